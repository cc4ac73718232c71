//! `ssrd dev`: the bundle file is watched and every save is reloaded
//! through the checked path, under load, with nothing failed; a broken save
//! keeps the old bundle serving and its error is reported once; `ssrd up`
//! never watches.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{bench_fixture, bundle, Load, LogEvent, Tier};
use sha2::{Digest, Sha256};

/// The bundle's short id, as `X-Ssrd-Bundle` and `/health` name it.
fn short_sha(source: &[u8]) -> String {
    Sha256::digest(source)
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Saves the way editors and bundlers do: a new file renamed over the old.
fn save(path: &Path, source: &[u8]) {
    let tmp = path.with_extension("js.tmp");
    std::fs::write(&tmp, source).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Which bundle renders now.
fn rendered_by(tier: &Tier) -> String {
    let r = common::post(tier.port, "/batch", &bench_fixture("batch-small.json"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.header("x-ssrd-bundle").unwrap_or_default().to_string()
}

#[test]
fn dev_reloads_each_save_and_a_broken_save_keeps_the_old_bundle() {
    let dir = common::tempdir("dev-watch");
    let path = dir.join("server.js");
    let first = std::fs::read(bundle("server.js")).unwrap();
    std::fs::write(&path, &first).unwrap();
    let mut tier = Tier::start_command("dev", 2, &path, &[]);
    assert_eq!(rendered_by(&tier), short_sha(&first));
    let load = Load::start(tier.port, bench_fixture("batch-small.json"), 2);

    // A save is reloaded without anyone running `ssrd reload`.
    let mut second = first.clone();
    second.extend_from_slice(b"\n// saved once\n");
    save(&path, &second);
    tier.wait_log(LogEvent::ReloadComplete, 0, Duration::from_secs(60));
    assert_eq!(rendered_by(&tier), short_sha(&second));

    // A broken save (written in place, as some editors do) is refused and
    // the running bundle keeps serving.
    std::fs::write(&path, "this is not javascript {").unwrap();
    tier.wait_log(LogEvent::ReloadRejected, 0, Duration::from_secs(60));
    assert_eq!(rendered_by(&tier), short_sha(&second));
    // Saving the same broken bytes again neither reloads nor repeats the
    // error.
    save(&path, b"this is not javascript {");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(tier.log_events(LogEvent::ReloadRejected).len(), 1);
    assert_eq!(tier.log_events(LogEvent::BundleSaved).len(), 2);

    // The fix is reloaded.
    let mut third = first.clone();
    third.extend_from_slice(b"\n// fixed\n");
    save(&path, &third);
    tier.wait_log(LogEvent::ReloadComplete, 1, Duration::from_secs(60));
    assert_eq!(rendered_by(&tier), short_sha(&third));

    let stats = load.stop();
    eprintln!("three saves under load: {stats:?}");
    assert_eq!(stats.failed, 0, "failed requests: {:?}", stats.samples);
    assert_eq!(stats.refused, 0, "{stats:?}");
    assert!(stats.ok > 20, "{stats:?}");
    let m = tier.metrics();
    assert!(m.contains("ssrd_reloads_total{result=\"ok\"} 2"), "{m}");
    assert!(m.contains("ssrd_reloads_total{result=\"failed\"} 1"), "{m}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn up_does_not_watch_the_bundle() {
    let dir = common::tempdir("up-no-watch");
    let path = dir.join("server.js");
    let first = std::fs::read(bundle("server.js")).unwrap();
    std::fs::write(&path, &first).unwrap();
    let mut tier = Tier::start(1, &path, &[]);
    let mut second = first.clone();
    second.extend_from_slice(b"\n// saved\n");
    save(&path, &second);
    std::thread::sleep(Duration::from_secs(2));
    assert!(tier.log_events(LogEvent::BundleSaved).is_empty());
    assert!(tier.log_events(LogEvent::ReloadChecking).is_empty());
    assert_eq!(rendered_by(&tier), short_sha(&first));
    let _ = std::fs::remove_dir_all(dir);
}

/// `meta.markup` of a failed `Throws` job, asked for with `?markup=1`.
fn fallback_markup(tier: &Tier) -> String {
    let r = common::post(
        tier.port,
        "/batch?markup=1",
        br#"{"0":{"name":"Throws","data":{"message":"<b>broken</b> nav"}}}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["results"]["0"]["error"]["name"], "Error", "{v}");
    v["results"]["0"]["meta"]["markup"]
        .as_str()
        .unwrap_or_else(|| panic!("no fallback markup: {v}"))
        .to_string()
}

#[test]
fn only_dev_mode_shows_a_failed_jobs_error_in_its_fallback_markup() {
    let dev = Tier::start_command("dev", 1, &bundle("faults.js"), &[]);
    let markup = fallback_markup(&dev);
    assert!(markup.contains("data-ssrd-dev-error"), "{markup}");
    assert!(
        markup.contains("&lt;b&gt;broken&lt;/b&gt; nav"),
        "escaped: {markup}"
    );
    assert!(markup.contains("data-hypernova-key=\"Throws\""), "{markup}");
    drop(dev);
    let production = Tier::start(1, &bundle("faults.js"), &[]);
    let markup = fallback_markup(&production);
    assert!(!markup.contains("data-ssrd-dev-error"), "{markup}");
    assert!(!markup.contains("failed to render"), "{markup}");
    assert!(markup.contains("data-hypernova-key=\"Throws\""), "{markup}");
}
