//! Failed jobs' stacks in the author's own files: the bundle's source map
//! applied to the frames of a job's `error.stack`.
//!
//! A minified bundle's frames read `at Zu (/run/ssrd/bundles/<sha>.js:1:20345)`;
//! with the map they read `at Throws (../src/faults-entry.js:17:9)`, the
//! file as the map names it (relative to where the map was built). The map
//! is found when the bundle is loaded ([`locate`]: `<bundle>.map` beside the
//! bundle, else the file or `data:` URL of its last `//# sourceMappingURL=`
//! comment), but read and parsed only when the first failed job needs it:
//! a worker whose renders succeed never pays for it, and one without a map
//! works exactly as before.
//!
//! Both inputs are untrusted. The map file is capped at [`MAX_MAP_BYTES`]
//! and its mappings at [`MAX_MAP_SEGMENTS`] (counted before the map is
//! decoded, so a hostile map cannot make the worker hold gigabytes); a
//! map that is too large, unreadable or malformed is given up on once,
//! with one `source_map_unusable` log line, and stacks stay as V8 wrote
//! them. A stack is the bundle's own text (code can set `error.stack`), so
//! only a capped stack is mapped (job.rs: at most 64 frames and 16 KiB), at
//! most [`MAX_LOCATIONS_PER_FRAME`] locations a frame, each mapped name
//! clipped, and the result is capped again.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::json;
use sourcemap::{DecodedMap, SourceMap, SourceMapRef, SourceView};

use crate::job::{clip, JobError};
use crate::log::{self, LogEvent};

/// The largest map file read. The example bundle's maps are 1 to 2 MiB.
pub const MAX_MAP_BYTES: u64 = 64 << 20;
/// The most mappings (segments) a map may hold: each costs the parsed map
/// about 32 bytes, so this bounds its memory at some 64 MiB whatever the
/// file holds. The example server bundle's map has 72 000 (one per ~5
/// bytes of minified code: 2 000 000 is a 10 MB bundle).
pub const MAX_MAP_SEGMENTS: usize = 2_000_000;
/// The largest inline (`data:` URL) map, decoded: its mappings cannot
/// number more than half its bytes, so this keeps within
/// [`MAX_MAP_SEGMENTS`] without decoding it twice. A larger map goes in a
/// file beside the bundle.
pub const MAX_INLINE_MAP_BYTES: usize = 2 * MAX_MAP_SEGMENTS;
/// Locations mapped in one frame at most (an `eval` frame has two).
pub const MAX_LOCATIONS_PER_FRAME: usize = 4;
/// Frames (from the top) whose minified function name is replaced by the
/// original one: the guess reads up to 128 tokens of the minified line
/// back from the frame's position, so it is the costly part of mapping.
pub const MAX_RENAMED_FRAMES: usize = 8;
/// Mapped frames remembered (the same failure tends to repeat), and the
/// longest frame remembered; past that many the memory is cleared.
const CACHED_FRAMES: usize = 1024;
const MAX_CACHED_FRAME: usize = 1024;
/// The longest source file or function name put into a frame, in bytes.
const MAX_MAPPED_NAME: usize = 512;

/// Where a bundle's source map is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapSource {
    /// A map file.
    File(PathBuf),
    /// A `data:` URL in the bundle's `sourceMappingURL` comment.
    Inline(String),
}

/// The map of the bundle at `bundle` with source `code`: `<bundle>.map` if
/// that file exists (what `ssrd up` stores beside its copy of the bundle,
/// whatever the comment says), else what the bundle's last
/// `//# sourceMappingURL=` comment names: a `data:` URL, or a file
/// relative to the bundle's directory. URLs with another scheme (a map
/// served over HTTP) are not fetched. Cheap: a `stat` or two, no reading.
pub fn locate(bundle: &Path, code: &str) -> Option<MapSource> {
    let beside = beside(bundle);
    if beside.is_file() {
        return Some(MapSource::File(beside));
    }
    let url = mapping_url(code)?;
    if url.starts_with("data:") {
        return Some(MapSource::Inline(url.to_string()));
    }
    if url.contains("://") || url.is_empty() {
        return None;
    }
    let path = url.strip_prefix("file:").unwrap_or(url);
    let path = bundle.parent().unwrap_or(Path::new(".")).join(path);
    path.is_file().then_some(MapSource::File(path))
}

/// `<bundle>.map`: where a bundle's map is looked for first, and where
/// `ssrd up`'s bundle store puts the map of the bundle it copies.
pub fn beside(bundle: &Path) -> PathBuf {
    let mut name = bundle.as_os_str().to_owned();
    name.push(".map");
    PathBuf::from(name)
}

/// The URL of the last `//# sourceMappingURL=` line of `code` (the one that
/// counts when there are several), looked for in the last 64 lines only.
fn mapping_url(code: &str) -> Option<&str> {
    code.lines()
        .rev()
        .take(64)
        .find_map(|line| {
            line.strip_prefix("//# sourceMappingURL=")
                .or_else(|| line.strip_prefix("//@ sourceMappingURL="))
        })
        .map(str::trim)
}

/// A bundle's source map, parsed on first use, and the mapping of stacks.
pub struct StackMap {
    /// The script name V8 shows in the bundle's frames (the name the bundle
    /// was evaluated under, also inside a snapshot: snapshot.rs keys on it).
    script: String,
    /// Where the map is; `None`: stacks stay as they are.
    source: Option<MapSource>,
    /// The bundle's code, for guessing a minified function's original name;
    /// kept only when there is a map.
    code: Option<Arc<str>>,
    /// The parsed map, once the first failed job asked for it (`None`
    /// inside: it was unusable, and that was logged).
    loaded: OnceLock<Option<Loaded>>,
    /// Frames mapped already (frame → mapped, renamed or not); only the
    /// render thread maps, so the lock is never contended.
    cache: Mutex<HashMap<(String, bool), String>>,
}

struct Loaded {
    map: SourceMap,
    view: SourceView,
}

impl std::fmt::Debug for StackMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackMap")
            .field("script", &self.script)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl StackMap {
    /// No map: stacks are left as they are.
    pub fn none(script: impl Into<String>) -> StackMap {
        StackMap {
            script: script.into(),
            source: None,
            code: None,
            loaded: OnceLock::new(),
            cache: Mutex::default(),
        }
    }

    /// The map of the bundle at `path`, evaluated under the name `script`.
    pub fn for_bundle(path: &Path, script: impl Into<String>, code: &str) -> StackMap {
        let source = locate(path, code);
        StackMap {
            script: script.into(),
            code: source.as_ref().map(|_| Arc::from(code)),
            source,
            loaded: OnceLock::new(),
            cache: Mutex::default(),
        }
    }

    /// Where the map is, if the bundle has one.
    pub fn source(&self) -> Option<&MapSource> {
        self.source.as_ref()
    }

    /// `error` with the bundle's frames of its stack mapped to the original
    /// files, lines and columns (unchanged when there is no usable map or
    /// no frame of the bundle), within job.rs's caps.
    pub fn map_error(&self, mut error: JobError) -> JobError {
        if self.source.is_none()
            || self.script.is_empty()
            || !error.stack.iter().any(|f| f.contains(&self.script))
        {
            return error;
        }
        let Some(loaded) = self.loaded() else {
            return error;
        };
        error = error.capped();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        for (i, frame) in error.stack.iter_mut().enumerate() {
            if !frame.contains(&self.script) {
                continue;
            }
            let key = (std::mem::take(frame), i <= MAX_RENAMED_FRAMES);
            if let Some(mapped) = cache.get(&key) {
                *frame = mapped.clone();
                continue;
            }
            *frame = self.map_frame(loaded, &key.0, key.1);
            if key.0.len() <= MAX_CACHED_FRAME {
                if cache.len() >= CACHED_FRAMES {
                    cache.clear();
                }
                cache.insert(key, frame.clone());
            }
        }
        drop(cache);
        error.capped()
    }

    /// The parsed map, parsing it on the first call.
    fn loaded(&self) -> Option<&Loaded> {
        self.loaded
            .get_or_init(|| {
                let source = self.source.as_ref()?;
                match load(source) {
                    Ok(map) => Some(Loaded {
                        map,
                        view: SourceView::new(self.code.clone().unwrap_or_else(|| Arc::from(""))),
                    }),
                    Err(problem) => {
                        log::emit(
                            LogEvent::SourceMapUnusable,
                            "the bundle's source map is unusable; stacks stay unmapped",
                            json!({"bundle": self.script, "map": describe(source), "problem": problem}),
                        );
                        None
                    }
                }
            })
            .as_ref()
    }

    /// One frame with each location in the bundle (`<script>:<line>:<col>`)
    /// replaced by the original one, and a minified function name before
    /// it by the original name when the map tells it.
    fn map_frame(&self, loaded: &Loaded, frame: &str, rename: bool) -> String {
        let mut out = String::with_capacity(frame.len() + 32);
        let mut rest = frame;
        let mut left = MAX_LOCATIONS_PER_FRAME;
        while let Some(at) = rest.find(self.script.as_str()) {
            let before = &rest[..at];
            let after = &rest[at + self.script.len()..];
            let at_boundary = before.is_empty() || before.ends_with(['(', ' ']);
            let position = at_boundary.then(|| line_col(after)).flatten();
            let mapped = match position {
                Some((line, col, used)) if left > 0 => {
                    lookup(&loaded.map, line, col).map(|location| (location, line, col, used))
                }
                _ => None,
            };
            match mapped {
                Some((location, line, col, used)) => {
                    left -= 1;
                    if rename {
                        out.push_str(&self.rename(loaded, frame, before, line, col));
                    } else {
                        out.push_str(before);
                    }
                    out.push_str(&location);
                    rest = &after[used..];
                }
                None => {
                    out.push_str(before);
                    out.push_str(&self.script);
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// `before` (the frame's text up to a location) with the function name
    /// of `at NAME (` replaced by its original name, when this is the
    /// frame's first location and the map can tell it.
    fn rename(&self, loaded: &Loaded, frame: &str, before: &str, line: u32, col: u32) -> String {
        let Some(head) = before.strip_suffix(" (") else {
            return before.to_string();
        };
        if before.len() != frame.find(" (").map_or(usize::MAX, |i| i + 2) {
            return before.to_string();
        }
        let (prefix, name) = match head.rfind(' ') {
            Some(i) => head.split_at(i + 1),
            None => return before.to_string(),
        };
        if name.is_empty() || name.contains(['.', '[', '<']) {
            return before.to_string();
        }
        match loaded.map.get_original_function_name(
            line.saturating_sub(1),
            col.saturating_sub(1),
            name,
            &loaded.view,
        ) {
            Some(original) if original != name => {
                format!("{prefix}{} (", clip(original, MAX_MAPPED_NAME))
            }
            _ => before.to_string(),
        }
    }
}

/// `:<line>:<col>` at the start of `text`: V8's 1-based line and column,
/// and how many bytes they took.
fn line_col(text: &str) -> Option<(u32, u32, usize)> {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let rest = text.strip_prefix(':')?;
    let n = digits(rest);
    let line: u32 = rest.get(..n)?.parse().ok()?;
    let rest = rest[n..].strip_prefix(':')?;
    let m = digits(rest);
    let col: u32 = rest.get(..m)?.parse().ok()?;
    Some((line, col, 1 + n + 1 + m))
}

/// The original `file:line:col` of V8's 1-based `line` and `col` in the
/// bundle, if the map has a mapping on that line at or before that column.
fn lookup(map: &SourceMap, line: u32, col: u32) -> Option<String> {
    let (line, col) = (line.checked_sub(1)?, col.checked_sub(1)?);
    let token = map.lookup_token(line, col)?;
    if token.get_dst_line() != line {
        return None;
    }
    let source = token.get_source()?;
    let source = source.strip_prefix("./").unwrap_or(source);
    Some(format!(
        "{}:{}:{}",
        clip(source, MAX_MAPPED_NAME),
        u64::from(token.get_src_line()) + 1,
        u64::from(token.get_src_col()) + 1
    ))
}

/// Reads and parses the map, within [`MAX_MAP_BYTES`]; what went wrong
/// otherwise.
fn load(source: &MapSource) -> Result<SourceMap, String> {
    let decoded = match source {
        MapSource::File(path) => {
            let file = std::fs::File::open(path).map_err(|e| format!("opening it: {e}"))?;
            let mut bytes = Vec::new();
            file.take(MAX_MAP_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| format!("reading it: {e}"))?;
            if bytes.len() as u64 > MAX_MAP_BYTES {
                return Err(too_large());
            }
            count_segments(&bytes)?;
            sourcemap::decode_slice(&bytes)
        }
        MapSource::Inline(url) => {
            if url.len() > MAX_INLINE_MAP_BYTES / 3 * 4 + 256 {
                return Err(format!(
                    "an inline map larger than {} MiB: put it in a file beside the bundle",
                    MAX_INLINE_MAP_BYTES >> 20
                ));
            }
            SourceMapRef::Ref(url.clone())
                .get_embedded_sourcemap()
                .and_then(|m| m.ok_or(sourcemap::Error::InvalidDataUrl))
        }
    };
    let mut map = match decoded.map_err(|e| format!("not a source map: {e}"))? {
        DecodedMap::Regular(map) => map,
        DecodedMap::Index(_) => return Err("an index map, which ssrd does not read".into()),
        DecodedMap::Hermes(_) => return Err("a Hermes map, not a JavaScript one".into()),
    };
    // The sources' text (most of an esbuild map) is not needed for stacks.
    for idx in 0..map.get_source_count() {
        map.set_source_contents(idx, None);
    }
    Ok(map)
}

/// Refuses a map with more than [`MAX_MAP_SEGMENTS`] mappings, or an index
/// map (`sections`: esbuild, webpack and Rollup write plain maps), before
/// the map is decoded into tokens.
fn count_segments(bytes: &[u8]) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Shape<'a> {
        #[serde(borrow, default)]
        mappings: Option<std::borrow::Cow<'a, str>>,
        #[serde(default)]
        sections: Option<serde::de::IgnoredAny>,
    }
    let shape: Shape =
        serde_json::from_slice(bytes).map_err(|e| format!("not a source map: {e}"))?;
    if shape.sections.is_some() {
        return Err("an index map (\"sections\"), which ssrd does not read".into());
    }
    let segments = shape
        .mappings
        .as_deref()
        .map_or(0, |m| m.split([',', ';']).filter(|s| !s.is_empty()).count());
    if segments > MAX_MAP_SEGMENTS {
        return Err(format!(
            "{segments} mappings, over the limit of {MAX_MAP_SEGMENTS}"
        ));
    }
    Ok(())
}

fn too_large() -> String {
    format!(
        "larger than the {} MiB limit of a source map",
        MAX_MAP_BYTES >> 20
    )
}

/// The map's file, or "inline", for the log line.
fn describe(source: &MapSource) -> String {
    match source {
        MapSource::File(path) => path.display().to_string(),
        MapSource::Inline(_) => "inline (data: URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bundle `b.js` (one line) and a map of it that puts `boom` on
    /// line 3 of `src/a.js`.
    fn fixture(tag: &str, map: Option<&str>) -> (PathBuf, String) {
        let dir = std::env::temp_dir().join(format!("ssrd-stackmap-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let bundle = dir.join("b.js");
        let code = "function x(){throw new Error(\"boom\")}\n".to_string();
        std::fs::write(&bundle, &code).unwrap();
        if let Some(map) = map {
            std::fs::write(beside(&bundle), map).unwrap();
        }
        (bundle, code)
    }

    // Generated column 13 (`throw`) → src/a.js line 3, column 5; column 0 →
    // line 1, column 1, name `boom` for the function.
    const MAP: &str =
        r#"{"version":3,"sources":["./src/a.js"],"names":["boom"],"mappings":"AAAAA,aAEI"}"#;

    fn error(stack: &[&str]) -> JobError {
        let mut e = JobError::new(crate::job::Cause::Bundle { code: 500 }, "Error", "boom");
        e.stack = stack.iter().map(|s| s.to_string()).collect();
        e
    }

    #[test]
    fn frames_of_the_bundle_are_mapped_and_others_left_alone() {
        let (bundle, code) = fixture("map", Some(MAP));
        let name = bundle.display().to_string();
        let stacks = StackMap::for_bundle(&bundle, name.clone(), &code);
        assert_eq!(stacks.source(), Some(&MapSource::File(beside(&bundle))));
        let frame = format!("at x ({name}:1:14)");
        let other = "at renderJob (ext:ssrd_host/render_glue.js:10:3)".to_string();
        let anonymous = format!("at {name}:1:14");
        let unmapped_line = format!("at y ({name}:7:1)");
        let e = stacks.map_error(error(&[
            "Error: boom",
            &frame,
            &other,
            &anonymous,
            &unmapped_line,
        ]));
        assert_eq!(e.stack[0], "Error: boom");
        assert_eq!(e.stack[1], "at x (src/a.js:3:5)");
        assert_eq!(e.stack[2], other);
        assert_eq!(e.stack[3], "at src/a.js:3:5");
        assert_eq!(e.stack[4], unmapped_line, "no mapping on that line");
    }

    #[test]
    fn without_a_map_or_with_a_bad_one_stacks_are_unchanged() {
        for (tag, map) in [
            ("none", None),
            ("garbage", Some("{not json")),
            (
                "wrong",
                Some(r#"{"version":3,"sources":[],"mappings":"!!!"}"#),
            ),
            ("empty", Some("")),
        ] {
            let (bundle, code) = fixture(tag, map);
            let name = bundle.display().to_string();
            let stacks = StackMap::for_bundle(&bundle, name.clone(), &code);
            let e = error(&["Error: boom", &format!("at x ({name}:1:14)")]);
            assert_eq!(stacks.map_error(e.clone()), e, "{tag}");
            assert_eq!(stacks.map_error(e.clone()), e, "{tag}, twice");
        }
    }

    #[test]
    fn the_comment_names_the_map_when_none_is_beside_the_bundle() {
        let (bundle, _) = fixture("comment", None);
        let dir = bundle.parent().unwrap();
        std::fs::write(dir.join("other.map"), MAP).unwrap();
        let code = "x()\n//# sourceMappingURL=other.map\n";
        assert_eq!(
            locate(&bundle, code),
            Some(MapSource::File(dir.join("other.map")))
        );
        assert_eq!(
            locate(&bundle, "x()\n//# sourceMappingURL=missing.map"),
            None
        );
        assert_eq!(
            locate(&bundle, "//# sourceMappingURL=https://cdn.example/b.js.map"),
            None
        );
        let inline = "x()\n//# sourceMappingURL=data:application/json;base64,e30=";
        assert!(matches!(
            locate(&bundle, inline),
            Some(MapSource::Inline(_))
        ));
        std::fs::write(beside(&bundle), MAP).unwrap();
        assert_eq!(
            locate(&bundle, code),
            Some(MapSource::File(beside(&bundle))),
            "<bundle>.map first"
        );
    }

    #[test]
    fn hostile_stacks_stay_bounded() {
        let (bundle, code) = fixture("hostile", Some(MAP));
        let name = bundle.display().to_string();
        let stacks = StackMap::for_bundle(&bundle, name.clone(), &code);
        let many = format!("at x ({name}:1:14) ").repeat(2000);
        let odd = format!("({name}:99999999999999:1 {name}: {name}:1:");
        let frames: Vec<String> = (0..500).map(|_| many.clone()).collect();
        let mut refs: Vec<&str> = frames.iter().map(String::as_str).collect();
        refs.push(&odd);
        let e = stacks.map_error(error(&refs));
        assert!(e.stack.len() <= crate::job::MAX_STACK_FRAMES + 1);
        let total: usize = e.stack.iter().map(String::len).sum();
        // job.rs caps at 16 KiB of text plus a short mark per frame cut.
        assert!(total <= crate::job::MAX_ERROR_TEXT + 64 * 16, "{total}");
        assert!(e.stack[0].starts_with("at x (src/a.js:3:5)"));
        let one = stacks.map_error(error(&[&odd]));
        assert_eq!(one.stack, vec![odd.clone()], "no position, nothing mapped");
    }

    #[test]
    fn a_map_with_too_many_mappings_is_refused_before_it_is_decoded() {
        let many = vec!["AAAA"; MAX_MAP_SEGMENTS + 1].join(",");
        let map = format!(r#"{{"version":3,"sources":["a.js"],"names":[],"mappings":"{many}"}}"#);
        let (bundle, code) = fixture("segments", Some(&map));
        let stacks = StackMap::for_bundle(&bundle, bundle.display().to_string(), &code);
        let t = std::time::Instant::now();
        let problem = load(stacks.source().unwrap()).unwrap_err();
        assert!(problem.contains("over the limit"), "{problem}");
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        let index = r#"{"version":3,"sections":[]}"#;
        assert!(count_segments(index.as_bytes())
            .unwrap_err()
            .contains("index map"));
        assert!(count_segments(MAP.as_bytes()).is_ok());
    }

    #[test]
    fn a_map_over_the_limit_is_not_read() {
        let (bundle, code) = fixture("huge", None);
        let f = std::fs::File::create(beside(&bundle)).unwrap();
        f.set_len(MAX_MAP_BYTES + 1).unwrap();
        let name = bundle.display().to_string();
        let stacks = StackMap::for_bundle(&bundle, name.clone(), &code);
        let e = error(&[&format!("at x ({name}:1:14)")]);
        assert_eq!(stacks.map_error(e.clone()), e);
        assert_eq!(
            load(stacks.source().unwrap()).unwrap_err(),
            too_large(),
            "refused for its size"
        );
    }

    /// The cost of the error path with the example bundle's real map
    /// (`cargo test --release -p ssrd-worker --lib -- --ignored
    /// --nocapture stack_map`; needs js-bundle/dist built).
    #[test]
    #[ignore]
    fn cost_of_mapping_with_the_example_bundles_map() {
        let bundle = Path::new(env!("CARGO_MANIFEST_DIR")).join("../js-bundle/dist/faults.js");
        let code = std::fs::read_to_string(&bundle).unwrap();
        let name = bundle.display().to_string();
        // Ten frames spread over the bundle's long minified lines; `shift`
        // moves them, so that the frames are new (not remembered).
        let lines: Vec<usize> = code.lines().map(str::len).collect();
        let longest = (0..lines.len()).max_by_key(|&i| lines[i]).unwrap();
        let stack = |shift: usize| -> Vec<String> {
            std::iter::once("Error: boom".to_string())
                .chain((0..10).map(|i| {
                    let col = lines[longest] * (i + 1) / 11 + shift;
                    format!("at Zu ({name}:{}:{col})", longest + 1)
                }))
                .collect()
        };
        let run = |stacks: &StackMap, shift: usize| {
            let frames = stack(shift);
            let refs: Vec<&str> = frames.iter().map(String::as_str).collect();
            stacks.map_error(error(&refs))
        };
        let t = std::time::Instant::now();
        let stacks = StackMap::for_bundle(&bundle, name.clone(), &code);
        let located = t.elapsed();
        let t = std::time::Instant::now();
        let first = run(&stacks, 0);
        let first_cost = t.elapsed();
        let n = 1000;
        let t = std::time::Instant::now();
        for shift in 1..=n {
            std::hint::black_box(run(&stacks, shift));
        }
        let new_frames = t.elapsed() / n as u32;
        let t = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(run(&stacks, 0));
        }
        let repeated = t.elapsed() / n as u32;
        eprintln!(
            "locate {located:?}; first error (read + parse the {} KiB map, map 10 frames) \
             {first_cost:?}; a later error of 10 new frames {new_frames:?}; the same error \
             again {repeated:?}\n{:#?}",
            std::fs::metadata(beside(&bundle)).unwrap().len() >> 10,
            first.stack
        );
    }
}
