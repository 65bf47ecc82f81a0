//! The machine's Debian mirror.
//!
//! The URI(s) of the Debian archive already configured on the machine
//! (`/etc/apt/sources.list`, `/etc/apt/sources.list.d/*.list` and `*.sources`,
//! deb822 or one-line) are reused; the entry serving the main `debian` archive
//! is picked, never `debian-security`. No host name is written anywhere but
//! into the cache. `PROBECONF_DEBIAN_MIRROR` (space separated URIs) overrides
//! this, for machines without a Debian apt setup.

use super::DebianError;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// One entry of an apt sources file (one-line or deb822).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct AptSource {
    pub(crate) types: Vec<String>,
    pub(crate) uris: Vec<String>,
    pub(crate) suites: Vec<String>,
    pub(crate) components: Vec<String>,
    pub(crate) enabled: bool,
}

/// Parse a deb822 `.sources` file.
pub(crate) fn parse_deb822(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    let flush = |fields: &mut BTreeMap<String, String>, out: &mut Vec<AptSource>| {
        if fields.is_empty() {
            return;
        }
        let words = |k: &str| -> Vec<String> {
            fields
                .get(k)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        let enabled = fields
            .get("enabled")
            .map(|v| !v.trim().eq_ignore_ascii_case("no"))
            .unwrap_or(true);
        out.push(AptSource {
            types: words("types"),
            uris: words("uris"),
            suites: words("suites"),
            components: words("components"),
            enabled,
        });
        fields.clear();
    };
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            flush(&mut fields, &mut out);
            last = None;
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(k) = &last {
                let v = fields.entry(k.clone()).or_default();
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            fields.insert(k.clone(), v.trim().to_string());
            last = Some(k);
        }
    }
    flush(&mut fields, &mut out);
    out
}

/// Parse a one-line-style `.list` file: `deb [opts] URI SUITE [COMPONENT…]`.
fn parse_one_line(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut toks = line.split_whitespace().peekable();
        let Some(ty) = toks.next() else { continue };
        if ty != "deb" && ty != "deb-src" {
            continue;
        }
        if toks.peek().is_some_and(|t| t.starts_with('[')) {
            for t in toks.by_ref() {
                if t.ends_with(']') {
                    break;
                }
            }
        }
        let rest: Vec<String> = toks.map(str::to_string).collect();
        if rest.len() < 2 {
            continue;
        }
        out.push(AptSource {
            types: vec![ty.to_string()],
            uris: vec![rest[0].clone()],
            suites: vec![rest[1].clone()],
            components: rest[2..].to_vec(),
            enabled: true,
        });
    }
    out
}

const DEBIAN_CODENAMES: [&str; 14] = [
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "stable",
    "testing",
    "unstable",
    "oldstable",
    "oldoldstable",
    "experimental",
    "rc-buggy",
];

/// Whether `suite` is a suite of the main Debian archive (not the security archive).
fn is_debian_main_suite(suite: &str) -> bool {
    if suite.contains("security") {
        return false;
    }
    let base = suite.split('-').next().unwrap_or(suite);
    DEBIAN_CODENAMES.contains(&base)
}

/// The URIs of the entry that serves the main Debian archive: type `deb`,
/// enabled, a Debian suite that is not `-security`, not a `debian-security`
/// URI. An entry with component `main` and a URI ending in `/debian` wins.
fn pick_debian_mirror(sources: &[AptSource]) -> Option<Vec<String>> {
    let mut best: Option<(u32, &AptSource)> = None;
    for s in sources {
        if !s.enabled || !s.types.iter().any(|t| t == "deb") {
            continue;
        }
        if !s.suites.iter().any(|x| is_debian_main_suite(x)) {
            continue;
        }
        let uris: Vec<&String> = s
            .uris
            .iter()
            .filter(|u| !u.contains("debian-security") && !u.starts_with("cdrom:"))
            .collect();
        if uris.is_empty() {
            continue;
        }
        let mut score = 1;
        if s.components.iter().any(|c| c == "main") {
            score += 2;
        }
        if uris
            .iter()
            .any(|u| u.trim_end_matches('/').ends_with("/debian"))
        {
            score += 1;
        }
        if best.map(|(b, _)| score > b).unwrap_or(true) {
            best = Some((score, s));
        }
    }
    best.map(|(_, s)| {
        s.uris
            .iter()
            .filter(|u| !u.contains("debian-security") && !u.starts_with("cdrom:"))
            .map(|u| u.trim_end_matches('/').to_string())
            .collect()
    })
}

/// The machine's Debian mirror URI(s), from apt's sources files.
pub fn system_mirror() -> Result<Vec<String>, DebianError> {
    if let Ok(v) = std::env::var("PROBECONF_DEBIAN_MIRROR") {
        let uris: Vec<String> = v.split_whitespace().map(str::to_string).collect();
        if !uris.is_empty() {
            return Ok(uris);
        }
    }
    mirror_in(Path::new("/etc/apt"))
}

/// The Debian mirror of the apt configuration in `etc_apt` (`sources.list`
/// and `sources.list.d/*.{list,sources}` under it).
fn mirror_in(etc_apt: &Path) -> Result<Vec<String>, DebianError> {
    let mut sources = Vec::new();
    if let Ok(t) = fs::read_to_string(etc_apt.join("sources.list")) {
        sources.extend(parse_one_line(&t));
    }
    if let Ok(rd) = fs::read_dir(etc_apt.join("sources.list.d")) {
        let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let name = f
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let Ok(t) = fs::read_to_string(&f) else {
                continue;
            };
            if name.ends_with(".sources") {
                sources.extend(parse_deb822(&t));
            } else if name.ends_with(".list") {
                sources.extend(parse_one_line(&t));
            }
        }
    }
    let d = etc_apt.display();
    pick_debian_mirror(&sources).ok_or_else(|| DebianError::NoMirror {
        searched: format!("{d}/sources.list, {d}/sources.list.d/*.{{list,sources}}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIRROR: &str = "http://mirror.invalid/debian";

    #[test]
    fn deb822_picks_the_main_archive_not_security() {
        let text = format!(
            "Types: deb\n\
             # a comment\n\
             URIs: {MIRROR}\n\
             Suites: bookworm bookworm-updates\n\
             Components: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\
             \n\
             Types: deb\n\
             URIs: http://mirror.invalid/debian-security\n\
             Suites: bookworm-security\n\
             Components: main\n"
        );
        let s = parse_deb822(&text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].suites, vec!["bookworm", "bookworm-updates"]);
        assert_eq!(pick_debian_mirror(&s), Some(vec![MIRROR.to_string()]));
        // Security first in the file changes nothing.
        let rev: Vec<AptSource> = s.iter().rev().cloned().collect();
        assert_eq!(pick_debian_mirror(&rev), Some(vec![MIRROR.to_string()]));
    }

    #[test]
    fn deb822_continuation_lines_disabled_entries_and_third_parties() {
        let text = "Types: deb\nURIs: https://other.invalid/apt\nSuites: nodistro\nComponents: main\n\n\
                    Types: deb\nURIs: http://off.invalid/debian\nSuites: trixie\nComponents: main\nEnabled: no\n\n\
                    Types: deb deb-src\nURIs: http://mirror.invalid/debian/\n  http://mirror2.invalid/debian\n\
                    Suites: trixie\nComponents: main contrib\n";
        let s = parse_deb822(text);
        assert_eq!(s.len(), 3);
        assert!(!s[1].enabled);
        assert_eq!(s[2].uris.len(), 2);
        assert_eq!(
            pick_debian_mirror(&s),
            Some(vec![
                MIRROR.to_string(),
                "http://mirror2.invalid/debian".to_string()
            ])
        );
    }

    #[test]
    fn one_line_sources() {
        let text = format!(
            "# comment\n\
             deb https://packages.invalid/apt cloud-sdk-bookworm main\n\
             deb-src {MIRROR} bookworm main\n\
             deb [ arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg ] http://mirror.invalid/debian-security bookworm-security main\n\
             deb [arch=amd64] {MIRROR}/ bookworm main contrib # trailing\n"
        );
        let s = parse_one_line(&text);
        assert_eq!(s.len(), 4);
        assert_eq!(s[2].uris, vec!["http://mirror.invalid/debian-security"]);
        assert_eq!(s[3].components, vec!["main", "contrib"]);
        assert_eq!(pick_debian_mirror(&s), Some(vec![MIRROR.to_string()]));
        assert_eq!(
            pick_debian_mirror(&s[..3]),
            None,
            "deb-src, security and third parties never count"
        );
    }

    /// A machine whose apt knows no Debian archive (only a third party, and
    /// a disabled file): the error says where it looked and what to do.
    #[test]
    fn no_mirror_is_a_clear_error() {
        let t = tempfile::tempdir().unwrap();
        let e = t.path();
        fs::create_dir_all(e.join("sources.list.d")).unwrap();
        fs::write(
            e.join("sources.list.d/other.list"),
            "deb https://packages.invalid/apt nodistro main\n",
        )
        .unwrap();
        fs::write(
            e.join("sources.list.d/debian.sources.disabled"),
            format!("Types: deb\nURIs: {MIRROR}\nSuites: trixie\nComponents: main\n"),
        )
        .unwrap();
        let msg = mirror_in(e).unwrap_err().to_string();
        let d = e.display();
        assert_eq!(
            msg,
            format!(
                "no Debian archive mirror in the apt configuration (looked in {d}/sources.list, \
                 {d}/sources.list.d/*.{{list,sources}}); set PROBECONF_DEBIAN_MIRROR to a Debian archive URI"
            )
        );
        // Enabled, it is found.
        fs::rename(
            e.join("sources.list.d/debian.sources.disabled"),
            e.join("sources.list.d/debian.sources"),
        )
        .unwrap();
        assert_eq!(mirror_in(e).unwrap(), vec![MIRROR.to_string()]);
        // A root request on such a machine fails with the same text.
        let r: super::super::root::RootError = DebianError::NoMirror {
            searched: "x".into(),
        }
        .into();
        assert!(r
            .to_string()
            .starts_with("no Debian archive mirror in the apt configuration"));
    }
}
