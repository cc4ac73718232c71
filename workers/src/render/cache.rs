// Over 450 lines: one concern (the render cache: its key, bounds and figures); 160 of them are its unit tests.
//! The render cache (opt-in, README "The bundle contract", `cache`): the
//! HTML and meta of components the bundle declared pure, kept by the render
//! thread so a repeat is answered without entering V8 at all.
//!
//! - Key: SHA-256 over the bundle's own SHA-256, the component name, and
//!   the *canonical* props and metadata (object keys sorted, numbers as
//!   parsed), each length-prefixed. A caller cannot make its entry answer
//!   another caller's different props: that would take a SHA-256 collision.
//!   Props that do not parse (or hold numbers serde_json cannot keep) are
//!   rendered uncached.
//! - Bounds: each component's `maxEntries` and `ttlMs` from the contract,
//!   and one byte budget for the whole worker (`--render-cache-bytes`). An
//!   entry counts its key, HTML, meta, name and a fixed overhead for the
//!   map and the order; one larger than an eighth of the budget is not kept.
//!   The least recently used entry goes first (of its component, for
//!   `maxEntries`; of all, for the budget).
//! - Only successful renders are kept; a failed one is rendered again next
//!   time.
//!
//! The cache lives and dies with the worker process: a reload starts new
//! workers, so nothing survives it (and the bundle hash is in the key
//! anyway).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::events::CacheFigures;
use crate::job::Rendered;

/// What the bundle declared for one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The most entries this component may hold.
    pub max_entries: usize,
    /// How long an entry answers after it was rendered.
    pub ttl: Duration,
}

/// Bytes an entry costs beyond its key and text: the map's slot, the
/// order's, the entry's fields and the allocator's headers (an estimate on
/// the safe side).
const ENTRY_OVERHEAD: usize = 160;

/// An entry larger than this fraction of the budget is not kept: one page
/// must not flush everything else.
const MAX_ENTRY_FRACTION: usize = 8;

type Digest32 = [u8; 32];

/// What the cache says about a job before it renders.
#[derive(Debug)]
pub enum Lookup {
    /// A kept answer, as the render returned it.
    Hit(Rendered),
    /// Not kept: render it, then offer the result under this key.
    Miss(Key),
    /// The component is not declared (or the cache is off, or its props
    /// are not canonicalisable): render it as always.
    Uncached,
}

/// Where a miss's result goes.
#[derive(Debug)]
pub struct Key {
    digest: Digest32,
    component: usize,
}

struct Entry {
    html: Box<str>,
    meta: Option<Box<str>>,
    component: usize,
    expires: Instant,
    /// Its place in the use order.
    seq: u64,
    bytes: usize,
}

struct Component {
    name: String,
    policy: Policy,
    /// Its entries, least recently used first.
    order: BTreeMap<u64, Digest32>,
}

/// The render thread's cache.
pub struct RenderCache {
    budget: usize,
    /// SHA-256 of the bundle's source.
    bundle: Digest32,
    components: Vec<Component>,
    by_name: HashMap<String, usize>,
    entries: HashMap<Digest32, Entry>,
    next_seq: u64,
    figures: CacheFigures,
}

impl RenderCache {
    /// A cache of `budget` bytes (0: off) for the bundle whose source is
    /// `bundle_source`, keeping the components `policies` names.
    pub fn new(budget: usize, bundle_source: &str, policies: Vec<(String, Policy)>) -> RenderCache {
        let budget = if policies.is_empty() { 0 } else { budget };
        let mut by_name = HashMap::new();
        let components = policies
            .into_iter()
            .enumerate()
            .map(|(i, (name, policy))| {
                by_name.insert(name.clone(), i);
                Component {
                    name,
                    policy,
                    order: BTreeMap::new(),
                }
            })
            .collect();
        RenderCache {
            budget,
            bundle: Sha256::digest(bundle_source.as_bytes()).into(),
            components,
            by_name,
            entries: HashMap::new(),
            next_seq: 0,
            figures: CacheFigures {
                budget: budget as u64,
                ..CacheFigures::default()
            },
        }
    }

    /// Whether anything can ever be kept.
    pub fn enabled(&self) -> bool {
        self.budget > 0
    }

    /// Hits, misses, evictions and bytes so far.
    pub fn figures(&self) -> CacheFigures {
        self.figures
    }

    /// Looks a job up: `props` and `metadata` as the caller sent them.
    pub fn lookup(
        &mut self,
        name: &str,
        props: &str,
        metadata: Option<&str>,
        now: Instant,
    ) -> Lookup {
        if !self.enabled() {
            return Lookup::Uncached;
        }
        let Some(&component) = self.by_name.get(name) else {
            return Lookup::Uncached;
        };
        let Some(digest) = self.digest(name, props, metadata) else {
            return Lookup::Uncached;
        };
        match self.entries.get(&digest) {
            Some(e) if e.expires > now => {
                let rendered = Rendered {
                    html: e.html.to_string(),
                    meta: e.meta.as_deref().map(str::to_owned),
                };
                let old = e.seq;
                let seq = self.bump();
                let order = &mut self.components[component].order;
                order.remove(&old);
                order.insert(seq, digest);
                if let Some(e) = self.entries.get_mut(&digest) {
                    e.seq = seq;
                }
                self.figures.hits += 1;
                Lookup::Hit(rendered)
            }
            Some(_) => {
                self.remove(&digest);
                self.figures.expired += 1;
                self.figures.misses += 1;
                Lookup::Miss(Key { digest, component })
            }
            None => {
                self.figures.misses += 1;
                Lookup::Miss(Key { digest, component })
            }
        }
    }

    /// Keeps a miss's successful render, evicting what the bounds need.
    pub fn store(&mut self, key: Key, rendered: &Rendered, now: Instant) {
        let name_len = self.components[key.component].name.len();
        let bytes = ENTRY_OVERHEAD
            + key.digest.len()
            + name_len
            + rendered.html.len()
            + rendered.meta.as_ref().map_or(0, String::len);
        if bytes > self.budget / MAX_ENTRY_FRACTION {
            self.figures.too_large += 1;
            return;
        }
        // A concurrent render of the same key cannot happen (one request at
        // a time), but a repeat within one batch can: replace it.
        self.remove(&key.digest);
        let policy = self.components[key.component].policy;
        while self.components[key.component].order.len() >= policy.max_entries {
            let oldest = self.components[key.component].order.first_key_value();
            let Some((_, &digest)) = oldest else { break };
            self.remove(&digest);
            self.figures.evictions += 1;
        }
        while self.figures.bytes as usize + bytes > self.budget {
            let Some(digest) = self.least_recent() else {
                break;
            };
            self.remove(&digest);
            self.figures.evictions += 1;
        }
        let seq = self.bump();
        self.components[key.component].order.insert(seq, key.digest);
        self.entries.insert(
            key.digest,
            Entry {
                html: rendered.html.as_str().into(),
                meta: rendered.meta.as_deref().map(Into::into),
                component: key.component,
                expires: now + policy.ttl,
                seq,
                bytes,
            },
        );
        self.figures.bytes += bytes as u64;
        self.figures.entries += 1;
    }

    fn bump(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// The least recently used entry of all: the oldest of the components'
    /// oldest (components are the contract's short list).
    fn least_recent(&self) -> Option<Digest32> {
        self.components
            .iter()
            .filter_map(|c| c.order.first_key_value())
            .min_by_key(|(seq, _)| **seq)
            .map(|(_, d)| *d)
    }

    fn remove(&mut self, digest: &Digest32) {
        if let Some(e) = self.entries.remove(digest) {
            self.components[e.component].order.remove(&e.seq);
            self.figures.bytes -= e.bytes as u64;
            self.figures.entries -= 1;
        }
    }

    /// The key's digest, or `None` when the props (or metadata) are not
    /// JSON serde_json keeps exactly (then the job renders uncached).
    fn digest(&self, name: &str, props: &str, metadata: Option<&str>) -> Option<Digest32> {
        let mut h = Sha256::new();
        h.update(self.bundle);
        framed(&mut h, name.as_bytes());
        framed(&mut h, &canonical_text(props)?);
        match metadata {
            None => h.update([0u8]),
            Some(m) => {
                h.update([1u8]);
                framed(&mut h, &canonical_text(m)?);
            }
        }
        Some(h.finalize().into())
    }
}

/// Feeds `bytes` with its length first, so no two fields can run together.
fn framed(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// JSON text in one spelling for one value: object keys sorted (the last
/// of duplicate keys wins, as in JSON.parse), no whitespace, numbers as
/// serde_json parsed them. `None` when the text does not parse.
pub fn canonical_text(json: &str) -> Option<Vec<u8>> {
    let value: Value = serde_json::from_str(json).ok()?;
    let mut out = Vec::with_capacity(json.len());
    write_canonical(&value, &mut out);
    Some(out)
}

fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut fields: Vec<(&String, &Value)> = map.iter().collect();
            fields.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in fields.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_json(k, out);
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        scalar => push_json(scalar, out),
    }
}

fn push_json(v: &(impl serde::Serialize + ?Sized), out: &mut Vec<u8>) {
    // Writing a string, number, bool or null to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_entries: usize, ttl_ms: u64) -> Policy {
        Policy {
            max_entries,
            ttl: Duration::from_millis(ttl_ms),
        }
    }

    fn cache(budget: usize, max_entries: usize) -> RenderCache {
        RenderCache::new(
            budget,
            "bundle",
            vec![("Nav".into(), policy(max_entries, 60_000))],
        )
    }

    fn html(s: &str) -> Rendered {
        Rendered {
            html: s.into(),
            meta: Some(r#"{"a":1}"#.into()),
        }
    }

    fn miss(c: &mut RenderCache, props: &str, now: Instant) -> Key {
        match c.lookup("Nav", props, None, now) {
            Lookup::Miss(k) => k,
            other => panic!("{props}: not a miss: {other:?}"),
        }
    }

    #[test]
    fn canonical_text_sorts_keys_at_every_depth_and_drops_whitespace() {
        let a = canonical_text(r#"{"b": [1, {"y": 2, "x": 1}], "a": "s"}"#).unwrap();
        let b = canonical_text(r#"{"a":"s","b":[1,{"x":1,"y":2}]}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, br#"{"a":"s","b":[1,{"x":1,"y":2}]}"#);
        assert_ne!(canonical_text(r#"{"a":1}"#), canonical_text(r#"{"a":"1"}"#));
        assert_eq!(
            canonical_text(r#"{"a":1,"a":2}"#).unwrap(),
            br#"{"a":2}"#,
            "the last duplicate wins, as in JSON.parse"
        );
        assert!(canonical_text("{").is_none());
    }

    #[test]
    fn a_repeat_hits_with_what_was_stored_and_key_order_does_not_matter() {
        let mut c = cache(1 << 20, 10);
        let now = Instant::now();
        let k = miss(&mut c, r#"{"a":1,"b":2}"#, now);
        c.store(k, &html("<nav>1</nav>"), now);
        match c.lookup("Nav", r#"{ "b":2, "a":1 }"#, None, now) {
            Lookup::Hit(r) => {
                assert_eq!(r.html, "<nav>1</nav>");
                assert_eq!(r.meta.as_deref(), Some(r#"{"a":1}"#));
            }
            other => panic!("{other:?}"),
        }
        miss(&mut c, r#"{"a":1,"b":3}"#, now);
        assert!(matches!(
            c.lookup("Nav", r#"{"a":1,"b":2}"#, Some(r#"{"m":1}"#), now),
            Lookup::Miss(_)
        ));
        assert!(matches!(
            c.lookup("Other", r#"{"a":1,"b":2}"#, None, now),
            Lookup::Uncached
        ));
        let f = c.figures();
        assert_eq!((f.hits, f.misses, f.entries), (1, 3, 1));
    }

    #[test]
    fn entries_expire_after_their_ttl() {
        let mut c = cache(1 << 20, 10);
        let now = Instant::now();
        let k = miss(&mut c, "{}", now);
        c.store(k, &html("x"), now);
        assert!(matches!(c.lookup("Nav", "{}", None, now), Lookup::Hit(_)));
        let later = now + Duration::from_secs(61);
        miss(&mut c, "{}", later);
        assert_eq!(c.figures().entries, 0);
        assert_eq!(c.figures().bytes, 0);
    }

    #[test]
    fn max_entries_evicts_the_least_recently_used() {
        let mut c = cache(1 << 20, 2);
        let now = Instant::now();
        for p in ["1", "2"] {
            let k = miss(&mut c, p, now);
            c.store(k, &html(p), now);
        }
        assert!(matches!(c.lookup("Nav", "1", None, now), Lookup::Hit(_)));
        let k = miss(&mut c, "3", now);
        c.store(k, &html("3"), now);
        assert!(matches!(c.lookup("Nav", "1", None, now), Lookup::Hit(_)));
        miss(&mut c, "2", now);
        assert_eq!(c.figures().evictions, 1);
        assert_eq!(c.figures().entries, 2);
    }

    #[test]
    fn the_byte_budget_holds_under_every_key_unique() {
        let budget = 64 << 10;
        let mut c = cache(budget, 1_000_000);
        let now = Instant::now();
        let page = "x".repeat(3000);
        for i in 0..1000 {
            let props = format!(r#"{{"id":{i}}}"#);
            let k = miss(&mut c, &props, now);
            c.store(k, &html(&page), now);
            assert!(c.figures().bytes as usize <= budget, "at {i}");
        }
        let f = c.figures();
        assert!(f.evictions > 900, "{f:?}");
        assert!(f.entries > 10, "{f:?}");
        // What the figures say is what is held.
        let held: usize = c.entries.values().map(|e| e.bytes).sum();
        assert_eq!(held as u64, f.bytes);
    }

    #[test]
    fn an_entry_over_an_eighth_of_the_budget_is_not_kept() {
        let mut c = cache(8000, 10);
        let now = Instant::now();
        let k = miss(&mut c, "{}", now);
        c.store(k, &html(&"x".repeat(1000)), now);
        assert_eq!(c.figures().entries, 0);
        assert_eq!(c.figures().too_large, 1);
    }

    #[test]
    fn a_budget_of_zero_or_no_declaration_caches_nothing() {
        let mut c = cache(0, 10);
        assert!(matches!(
            c.lookup("Nav", "{}", None, Instant::now()),
            Lookup::Uncached
        ));
        let mut c = RenderCache::new(1 << 20, "b", Vec::new());
        assert!(!c.enabled());
        assert!(matches!(
            c.lookup("Nav", "{}", None, Instant::now()),
            Lookup::Uncached
        ));
    }

    #[test]
    fn another_bundle_never_shares_a_key() {
        let a = cache(1 << 20, 10);
        let b = RenderCache::new(1 << 20, "other", vec![("Nav".into(), policy(10, 1000))]);
        assert_ne!(a.digest("Nav", "{}", None), b.digest("Nav", "{}", None));
        assert_ne!(
            a.digest("Nav", "{}", None),
            a.digest("Nav", "{}", Some("{}"))
        );
    }
}
