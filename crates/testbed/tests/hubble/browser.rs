//! Headless Chromium for the web UI's tests: the DOM a page has built after
//! its scripts ran (`--dump-dom` with a virtual-time budget), a screenshot,
//! and just enough of a reader for the serialised DOM (start tags and
//! their attributes, the text of table cells) to assert on it without a
//! parser crate.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's `chromium`, installed if missing (as `make setup` does);
/// `None` only when it cannot be installed.
pub fn chromium() -> Option<PathBuf> {
    let find = || {
        ["chromium", "chromium-browser"].iter().find_map(|name| {
            let out = Command::new("sh")
                .args(["-c", &format!("command -v {name}")])
                .output()
                .ok()?;
            let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
            (!path.is_empty()).then(|| PathBuf::from(path))
        })
    };
    if let Some(path) = find() {
        return Some(path);
    }
    eprintln!("chromium missing: apt-get install chromium");
    let _ = Command::new("sh")
        .args([
            "-c",
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null",
        ])
        .status();
    find()
}

fn run(bin: &Path, profile: &Path, args: &[&str], url: &str) -> std::process::Output {
    Command::new("timeout")
        .arg("60")
        .arg(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("running chromium")
}

/// The page's DOM after `budget_ms` of virtual time (its timers and
/// fetches run; virtual time waits for network answers).
pub fn dump_dom(bin: &Path, profile: &Path, url: &str, budget_ms: u32) -> String {
    let out = run(
        bin,
        profile,
        &["--dump-dom", &format!("--virtual-time-budget={budget_ms}")],
        url,
    );
    assert!(
        out.status.success(),
        "chromium --dump-dom failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A PNG of the page at `width`x`height` after `budget_ms` of virtual time.
pub fn screenshot(bin: &Path, profile: &Path, url: &str, file: &Path, size: (u32, u32)) {
    let out = run(
        bin,
        profile,
        &[
            &format!("--screenshot={}", file.display()),
            &format!("--window-size={},{}", size.0, size.1),
            "--hide-scrollbars",
            "--virtual-time-budget=2500",
        ],
        url,
    );
    assert!(
        out.status.success() && file.is_file(),
        "chromium --screenshot failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// Attributes of one start tag's text (`a="x" b="y"`), as serialised by
/// Chromium (double quotes, entities escaped).
fn attributes(tag: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = tag;
    while let Some(eq) = rest.find("=\"") {
        let name = rest[..eq]
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or("")
            .to_string();
        let value_start = eq + 2;
        let Some(len) = rest[value_start..].find('"') else {
            break;
        };
        out.insert(name, unescape(&rest[value_start..value_start + len]));
        rest = &rest[value_start + len + 1..];
    }
    out
}

/// Every `<name ...>` start tag's attributes, in document order.
pub fn elements(dom: &str, name: &str) -> Vec<BTreeMap<String, String>> {
    let open = format!("<{name} ");
    dom.match_indices(&open)
        .filter_map(|(at, _)| {
            let end = dom[at..].find('>')?;
            Some(attributes(&dom[at + open.len()..at + end]))
        })
        .collect()
}

/// The text of the element whose `id` is `id` (no nested tags expected).
pub fn text_by_id(dom: &str, id: &str) -> Option<String> {
    let key = format!("id=\"{id}\"");
    let at = dom.find(&key)?;
    let start = at + dom[at..].find('>')? + 1;
    let end = start + dom[start..].find('<')?;
    Some(unescape(&dom[start..end]))
}

/// Each `<tr>` with `data-id` in the table body: its attributes and its
/// cells' texts.
pub fn table_rows(dom: &str) -> Vec<(BTreeMap<String, String>, Vec<String>)> {
    let Some(body) = dom.find("<tbody>").map(|at| &dom[at..]) else {
        return vec![];
    };
    let body = &body[..body.find("</tbody>").unwrap_or(body.len())];
    body.split("<tr ")
        .skip(1)
        .map(|chunk| {
            let attrs = attributes(&chunk[..chunk.find('>').unwrap_or(0)]);
            let cells = chunk
                .split("<td")
                .skip(1)
                .map(|cell| {
                    let start = cell.find('>').map_or(0, |i| i + 1);
                    let end = cell.find("</td>").unwrap_or(cell.len());
                    unescape(&cell[start..end])
                })
                .collect();
            (attrs, cells)
        })
        .collect()
}

#[test]
fn reads_chromium_serialised_markup() {
    let dom = r#"<svg><g class="edge dropped" data-from="shop/a" data-to="shop/b" data-count="2"><path d="M0,0"></path></g></svg>
<dd id="detail-reason">Policy denied &amp; more</dd>
<table><tbody><tr data-id="4" data-verdict="DROPPED"><td>t</td><td class="verdict-DROPPED">DROPPED</td></tr></tbody></table>"#;
    let edges = elements(dom, "g");
    assert_eq!(edges[0]["class"], "edge dropped");
    assert_eq!(edges[0]["data-count"], "2");
    assert_eq!(
        text_by_id(dom, "detail-reason").as_deref(),
        Some("Policy denied & more")
    );
    let rows = table_rows(dom);
    assert_eq!(rows[0].0["data-verdict"], "DROPPED");
    assert_eq!(rows[0].1, ["t", "DROPPED"]);
}
