//! The Grafana dashboard (deploy/grafana/ssrd.json) and the alert rules
//! (docs/alerts.yml) against a live Prometheus: a real tier under load,
//! with failing jobs and a worker killed, scraped every second by a real
//! `prometheus` server started here on a free loopback port. Every panel
//! query of the committed dashboard must return data through Prometheus'
//! HTTP API; every alert rule must load, be evaluated with health "ok" and
//! answer without error, and what it compares with its threshold must
//! return data; every recording rule must return data.
//!
//! Prometheus comes from Debian's `prometheus` package (the one promtool
//! comes from). Without it the test says it is skipped, unless
//! SSRD_REQUIRE_PROMTOOL is set (CI sets it): then it must run.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{bench_fixture, bundle, free_block, kill, try_get, Load, LogEvent, Tier, TIMEOUT};
use serde_json::{json, Value};

/// What stands for Grafana's `$__rate_interval` (and the other interval
/// variables) here: with a 1 s scrape, 30 s holds plenty of samples.
const WINDOW: &str = "30s";

#[test]
fn every_dashboard_panel_and_alert_rule_returns_data_from_a_live_prometheus() {
    let Some(server) = prometheus_binary() else {
        return;
    };
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(common::root().join("deploy/grafana/ssrd.json"))
            .expect("deploy/grafana/ssrd.json (deploy/grafana/generate writes it)"),
    )
    .expect("the dashboard is JSON");
    let targets = panel_targets(&dashboard);
    assert!(
        targets.len() >= 20,
        "only {} panel queries in the dashboard",
        targets.len()
    );

    // A tier under load: good batches, and batches whose jobs fail (a
    // component that throws, a name the bundle does not have) so that the
    // outcome series carry more than ok.
    let mut tier = Tier::start(2, &bundle("faults.js"), &[]);
    let good = Load::start(tier.port, bench_fixture("batch-small.json"), 2);
    let failing = json!({
        "0": {"name": "Throws", "data": {}},
        "1": {"name": "NoSuchComponent", "data": {}},
        "2": {"name": "HelloWorld", "data": {"name": "dashboard"}},
    });
    let bad = Load::start(tier.port, failing.to_string().into_bytes(), 1);

    let prom = Prometheus::start(&server, tier.metrics_port);
    prom.wait_for("the tier scraped", r#"up{job="ssrd"} == 1"#);

    // A worker killed, so the restart series count a real restart.
    let victim = tier.worker_pids()["w1"];
    kill(victim, "9");
    let died = tier.wait_log(LogEvent::WorkerDiedReplaced, 0, TIMEOUT);
    assert_eq!(died["reason"], "crash", "{died}");
    tier.wait_log(LogEvent::WorkerInRotation, 2, TIMEOUT);
    prom.wait_for(
        "the restart scraped",
        r#"ssrd_worker_restarts_total{job="ssrd", reason="crash"} >= 1"#,
    );
    prom.wait_for(
        "failed jobs scraped",
        &format!(r#"increase(ssrd_jobs_total{{job="ssrd", outcome="error"}}[{WINDOW}]) > 0"#),
    );

    // Every panel query, with Grafana's variables given concrete values.
    let deadline = Instant::now() + TIMEOUT;
    let mut failed = Vec::new();
    for t in &targets {
        let expr = concrete(&t.expr);
        let answer = loop {
            let answer = prom.query(&expr);
            if matches!(&answer, Ok(n) if *n > 0) || Instant::now() > deadline {
                break answer;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        match answer {
            Ok(n) if n > 0 => eprintln!("ok ({n} series) {:?} {}: {expr}", t.panel, t.ref_id),
            Ok(_) => failed.push(format!(
                "panel {:?} target {}: no data from {expr}",
                t.panel, t.ref_id
            )),
            Err(e) => failed.push(format!(
                "panel {:?} target {}: {e} from {expr}",
                t.panel, t.ref_id
            )),
        }
    }

    // The alert rules, loaded through rule_files: each one loaded, healthy
    // once evaluated, and its expression answered without error; each
    // recording rule (if any) with data.
    let rules = prom.wait_rules_evaluated();
    let shipped = shipped_rule_count();
    if rules.len() != shipped {
        failed.push(format!(
            "docs/alerts.yml has {shipped} rules, Prometheus loaded {}",
            rules.len()
        ));
    }
    for rule in &rules {
        let name = rule["name"].as_str().unwrap_or("?");
        let expr = rule["query"].as_str().unwrap_or_default();
        if rule["health"] != "ok" {
            failed.push(format!(
                "rule {name}: health {} ({}): {expr}",
                rule["health"], rule["lastError"]
            ));
        }
        match (rule["type"].as_str(), prom.query(expr)) {
            (_, Err(e)) => failed.push(format!("rule {name}: {e} from {expr}")),
            (Some("recording"), Ok(0)) => {
                failed.push(format!("recording rule {name}: no data from {expr}"))
            }
            (_, Ok(n)) => eprintln!("ok rule {name} ({n} series now): {expr}"),
        }
        // An alert is quiet on a healthy tier, so its whole expression may
        // rightly return nothing; what it compares must not (a misspelled
        // metric would otherwise leave an alert that can never fire).
        if let Some(measured) = compared(expr) {
            match prom.query(measured) {
                Ok(n) if n > 0 => eprintln!("ok rule {name} measures {n} series: {measured}"),
                Ok(_) => failed.push(format!("rule {name}: no data from {measured}")),
                Err(e) => failed.push(format!("rule {name}: {e} from {measured}")),
            }
        }
    }

    good.stop();
    bad.stop();
    assert!(
        failed.is_empty(),
        "{} of {} panel queries and {} rules failed against a live Prometheus:\n{}\n\nPrometheus' log:\n{}",
        failed.len(),
        targets.len(),
        rules.len(),
        failed.join("\n"),
        prom.log()
    );
    eprintln!(
        "{} panel queries and {} alert rules proven against Prometheus",
        targets.len(),
        rules.len()
    );
}

/// `prometheus` if it runs; `None` (the test skipped, said why) when it is
/// missing and SSRD_REQUIRE_PROMTOOL is unset.
fn prometheus_binary() -> Option<PathBuf> {
    let server = PathBuf::from("prometheus");
    match Command::new(&server).arg("--version").output() {
        Ok(out) if out.status.success() => Some(server),
        found if std::env::var_os("SSRD_REQUIRE_PROMTOOL").is_some() => panic!(
            "the prometheus server is required (SSRD_REQUIRE_PROMTOOL is set) but does not run: {found:?}"
        ),
        _ => {
            eprintln!(
                "prometheus not installed (Debian: apt-get install prometheus): dashboard and alert rules against a live Prometheus skipped"
            );
            None
        }
    }
}

/// One query of a dashboard panel.
struct Target {
    panel: String,
    ref_id: String,
    expr: String,
}

/// Every target of every panel, rows' own panels included. Also checks that
/// each reads from the `${datasource}` variable, so the dashboard imports
/// into any Grafana whatever its Prometheus is called.
fn panel_targets(dashboard: &Value) -> Vec<Target> {
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    assert!(
        variables
            .iter()
            .any(|v| v["type"] == "datasource" && v["name"] == "datasource"),
        "a datasource variable"
    );
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .collect();
    while let Some(panel) = stack.pop() {
        if let Some(inner) = panel["panels"].as_array() {
            stack.extend(inner);
        }
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().unwrap_or("?").to_string();
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "panel {title}");
        let targets = panel["targets"].as_array();
        assert!(
            targets.is_some_and(|t| !t.is_empty()),
            "panel {title} has no query"
        );
        for t in targets.unwrap() {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "panel {title}");
            let expr = t["expr"].as_str().expect("a PromQL expr").to_string();
            assert!(!expr.contains("datasource"), "panel {title}: {expr}");
            out.push(Target {
                panel: title.clone(),
                ref_id: t["refId"].as_str().unwrap_or("?").to_string(),
                expr,
            });
        }
    }
    out.sort_by(|a, b| (&a.panel, &a.ref_id).cmp(&(&b.panel, &b.ref_id)));
    out
}

/// `expr` with Grafana's variables replaced as Grafana would for one
/// Prometheus scraping one tier: every host, a 30 s rate window.
fn concrete(expr: &str) -> String {
    let mut out = expr.to_string();
    for interval in [
        "${__rate_interval}",
        "$__rate_interval",
        "${__interval}",
        "$__interval",
        "${__range}",
        "$__range",
    ] {
        out = out.replace(interval, WINDOW);
    }
    for all_hosts in ["${instance}", "$instance"] {
        out = out.replace(all_hosts, ".*");
    }
    assert!(
        !out.contains('$'),
        "a Grafana variable this test does not know in {expr}"
    );
    out
}

/// The left side of an expression that ends in a comparison with a number
/// (`… > 0.1`, `… == 0`), as Prometheus prints a rule's query.
fn compared(expr: &str) -> Option<&str> {
    let mut parts = expr.trim().rsplitn(3, ' ');
    let (number, op, left) = (parts.next()?, parts.next()?, parts.next()?);
    let comparison = ["==", "!=", ">", "<", ">=", "<="].contains(&op);
    (comparison && number.parse::<f64>().is_ok()).then_some(left)
}

/// How many rules (alerting and recording) docs/alerts.yml declares.
fn shipped_rule_count() -> usize {
    std::fs::read_to_string(common::root().join("docs/alerts.yml"))
        .unwrap()
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("- alert:") || l.starts_with("- record:"))
        .count()
}

/// A `prometheus` server on a free loopback port with its own config and
/// storage in a temp dir, scraping one tier every second and evaluating
/// docs/alerts.yml every second; killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Prometheus {
    fn start(server: &Path, metrics_port: u16) -> Prometheus {
        let dir = common::tempdir("prometheus");
        let rules = common::root().join("docs/alerts.yml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             scrape_configs:\n  - job_name: ssrd\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n",
            rules = rules.display()
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = free_block(1);
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(server)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        let mut prom = Prometheus { child, port, dir };
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = prom.child.try_wait().unwrap() {
                panic!("prometheus exited ({status}):\n{}", prom.log());
            }
            if try_get(port, "/-/ready", Duration::from_secs(2)).is_ok_and(|r| r.status == 200) {
                return prom;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within {TIMEOUT:?}:\n{}",
                prom.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    fn api(&self, path: &str) -> Result<Value, String> {
        let r = try_get(self.port, path, Duration::from_secs(10))?;
        let v: Value = serde_json::from_slice(&r.body)
            .map_err(|e| format!("HTTP {} not JSON ({e}): {}", r.status, r.text()))?;
        if r.status != 200 || v["status"] != "success" {
            return Err(format!(
                "HTTP {}: {} {}",
                r.status, v["errorType"], v["error"]
            ));
        }
        Ok(v["data"].clone())
    }

    /// An instant query: how many series (or 1 for a scalar) it returned.
    fn query(&self, expr: &str) -> Result<usize, String> {
        let data = self.api(&format!("/api/v1/query?query={}", url_encode(expr)))?;
        match data["resultType"].as_str() {
            Some("vector") | Some("matrix") => Ok(data["result"].as_array().map_or(0, Vec::len)),
            Some("scalar") | Some("string") => Ok(1),
            other => Err(format!("result type {other:?}")),
        }
    }

    /// Waits until `expr` returns data.
    fn wait_for(&self, what: &str, expr: &str) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let answer = self.query(expr);
            if matches!(answer, Ok(n) if n > 0) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {expr} returned {answer:?} for {TIMEOUT:?}; Prometheus' log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The loaded rules once every one has been evaluated at least once.
    fn wait_rules_evaluated(&self) -> Vec<Value> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let rules: Vec<Value> = self
                .api("/api/v1/rules")
                .map(|data| {
                    data["groups"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                        .collect()
                })
                .unwrap_or_default();
            if !rules.is_empty() && rules.iter().all(|r| r["health"] != "unknown") {
                return rules;
            }
            assert!(
                Instant::now() < deadline,
                "rules not evaluated within {TIMEOUT:?}: {rules:?}; Prometheus' log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `s` as a URL query value.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
