//! Hypernova's placement markup: how a page embeds one rendered component
//! (or, when the render failed, only its props, for the browser to render).
//!
//! ```html
//! <div data-hypernova-key="KEY" data-hypernova-id="ID">HTML_OR_EMPTY</div>
//! <script type="application/json" data-hypernova-key="KEY" data-hypernova-id="ID"><!--JSON--></script>
//! ```
//!
//! KEY is the component name without non-word characters, ID a fresh UUID
//! per placement, the two lines joined by one "\n", exactly as Hypernova's
//! `serialize` writes them. JSON is the props, compact, with `&` → `&amp;`
//! and `>` → `&gt;` (which Hypernova's browser runtime reverses), and, unlike
//! Hypernova, `<`, U+2028 and U+2029 written as JSON escapes (`\u003c` …):
//! no props value can close the script element (Hypernova's issue #165,
//! `</script ` followed by a space), and `JSON.parse` undoes the escapes by
//! itself, so Hypernova's own reader still reads it.

use serde_json::value::RawValue;

/// `name` with every non-word character removed (JS `/\W/g`).
pub fn key(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// A fresh placement id (UUID v4).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The props as they go inside the script element, comment markers included.
pub fn encode_props(props: &RawValue) -> String {
    // Compact, like JSON.stringify of the parsed props (the raw text may
    // carry whitespace), streamed from parser to writer without building a
    // value; the raw text if it cannot be reparsed.
    let mut compact = Vec::with_capacity(props.get().len());
    let mut parser = serde_json::Deserializer::from_str(props.get());
    let mut writer = serde_json::Serializer::new(&mut compact);
    let text: &[u8] = match serde_transcode::transcode(&mut parser, &mut writer) {
        Ok(()) => &compact,
        Err(_) => props.get().as_bytes(),
    };
    let mut out = Vec::with_capacity(text.len() + 16);
    out.extend_from_slice(b"<!--");
    let mut copied = 0;
    let mut i = 0;
    while i < text.len() {
        let (escape, len): (&[u8], usize) = match &text[i..] {
            [b'&', ..] => (b"&amp;", 1),
            [b'>', ..] => (b"&gt;", 1),
            // Only ever inside JSON strings, where these escapes are valid.
            [b'<', ..] => (b"\\u003c", 1),
            [0xE2, 0x80, 0xA8, ..] => (b"\\u2028", 3),
            [0xE2, 0x80, 0xA9, ..] => (b"\\u2029", 3),
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&text[copied..i]);
        out.extend_from_slice(escape);
        i += len;
        copied = i;
    }
    out.extend_from_slice(&text[copied..]);
    out.extend_from_slice(b"-->");
    // Only whole ASCII bytes and whole three-byte characters were replaced.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The whole placement: server HTML inside the div, or an empty div (the
/// fallback) when `html` is `None`.
pub fn placement(name: &str, html: Option<&str>, props: &RawValue, id: &str) -> String {
    let key = key(name);
    let script = encode_props(props);
    let html = html.unwrap_or("");
    format!(
        "<div data-hypernova-key=\"{key}\" data-hypernova-id=\"{id}\">{html}</div>\n\
         <script type=\"application/json\" data-hypernova-key=\"{key}\" data-hypernova-id=\"{id}\">{script}</script>"
    )
}

/// Development mode's note for the page's author, put before a failed
/// job's fallback markup: which component failed, and its error and stack,
/// escaped. The browser still renders the component client-side below it.
pub fn dev_error(name: &str, error: &str, message: &str, stack: &str) -> String {
    format!(
        "<div data-ssrd-dev-error style=\"background:#fff4f4;border:2px solid #c00;color:#300;\
         font:13px/1.4 monospace;padding:8px 12px;margin:4px 0;white-space:pre-wrap\">\
         <strong>ssrd dev: {} failed to render on the server</strong> \
         (rendered in the browser instead; this note appears only under `ssrd dev`)\n\
         {}: {}\n{}</div>\n",
        escape(name),
        escape(error),
        escape(message),
        escape(stack)
    )
}

/// `text` safe inside HTML text and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn the_dev_note_escapes_everything_the_bundle_wrote() {
        let note = dev_error("<Nav>", "Error", "<script>x</script>", "at \"a\" & 'b'");
        assert!(note.contains("&lt;Nav&gt;"));
        assert!(note.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(note.contains("at &quot;a&quot; &amp; &#39;b&#39;"));
        assert!(!note.contains("<script>"));
    }

    #[test]
    fn matches_hypernova_byte_for_byte_for_plain_props() {
        // What hypernova's serialize("My-Comp", "<p>x</p>", {a: "b&c>d", n: 1})
        // writes, with its random id replaced.
        let got = placement(
            "My-Comp",
            Some("<p>x</p>"),
            &raw(r#"{ "a": "b&c>d", "n": 1 }"#),
            "ID",
        );
        assert_eq!(
            got,
            "<div data-hypernova-key=\"MyComp\" data-hypernova-id=\"ID\"><p>x</p></div>\n\
             <script type=\"application/json\" data-hypernova-key=\"MyComp\" data-hypernova-id=\"ID\">\
             <!--{\"a\":\"b&amp;c&gt;d\",\"n\":1}--></script>"
        );
    }

    #[test]
    fn nothing_in_props_can_close_the_script() {
        let nasty =
            r#"{"x":"</script><script>alert(1)</script>","y":"</script >","z":"\u2028\u2029<!--"}"#;
        let out = encode_props(&raw(nasty));
        assert!(out.starts_with("<!--") && out.ends_with("-->"), "{out}");
        assert!(
            !out[4..].contains('<'),
            "only the comment opener has a '<': {out}"
        );
        assert!(!out.contains('\u{2028}') && !out.contains('\u{2029}'));
        // Reversing what the browser reverses gives back the same value.
        let inner = &out[4..out.len() - 3];
        let decoded = inner.replace("&gt;", ">").replace("&amp;", "&");
        let back: serde_json::Value = serde_json::from_str(&decoded).unwrap();
        let orig: serde_json::Value = serde_json::from_str(nasty).unwrap();
        assert_eq!(back, orig);
    }

    #[test]
    fn streamed_compaction_writes_what_reparsing_wrote() {
        // The way the props were compacted before (parse to a value, write
        // it out), which the streamed one must match byte for byte.
        fn by_value(s: &str) -> String {
            let v: serde_json::Value = serde_json::from_str(s).unwrap();
            serde_json::to_string(&v).unwrap()
        }
        for props in [
            r#"{ "a" : [1, 2.5, -3e2, 1.0, 18446744073709551616, true, null] }"#,
            r#"{"\u00e9t\u00e9":"caf\u00e9 \/ \" \\ \n \t", "z": {}, "y": []}"#,
            "{\n  \"nested\": {\"deep\": [{\"k\": \"日本語 – ü\"}]}\n}",
            r#""just a string""#,
            "42",
            r#"{"x":"\ud83d\ude00","tag":"<b>&amp;</b>"}"#,
        ] {
            let inner = encode_props(&raw(props));
            let inner = &inner[4..inner.len() - 3];
            let expected = by_value(props)
                .replace('&', "&amp;")
                .replace('>', "&gt;")
                .replace('<', "\\u003c");
            assert_eq!(inner, expected, "{props}");
        }
    }

    #[test]
    fn ids_are_fresh_uuids() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(key("Search-Results.v2"), "SearchResultsv2");
    }
}
