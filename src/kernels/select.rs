//! Which packages hold which kernel, and which kernel answers a request (see
//! the module docs of [`crate::kernels`]).

use super::{Available, KernelError, FLAVOUR};
use crate::debian::apt::{suite_rank, Apt, PkgVersion};
use crate::debian::deb::version_cmp as dpkg_cmp;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Every amd64 kernel release in the lists of `apt`, oldest first.
pub(crate) fn releases(apt: &Apt) -> Result<Vec<Available>, KernelError> {
    let names: Vec<String> = apt
        .pkgnames("linux-")?
        .into_iter()
        .filter(|n| classify_package(n).is_some())
        .collect();
    let versions = apt.madison(&names)?;
    Ok(candidates(&versions)
        .into_iter()
        .map(|c| c.available())
        .collect())
}

/// What a kernel package holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    /// `linux-binary-REL`: the signed kernel (split packaging, 6.19+).
    Binary,
    /// `linux-image-REL`: the signed kernel and its config (up to 6.18), a meta package later.
    Image,
    /// `linux-binary-unsigned-REL`.
    BinaryUnsigned,
    /// `linux-image-REL-unsigned`.
    ImageUnsigned,
    /// `linux-base-REL`: config, System.map stub, modules.builtin (split packaging).
    Base,
}

/// The role and release of a package name, for the amd64 flavour only
/// (`None` for cloud/rt flavours, -dbg, meta packages and anything else).
fn classify_package(name: &str) -> Option<(Role, String)> {
    let (role, rest) = if let Some(r) = name.strip_prefix("linux-binary-unsigned-") {
        (Role::BinaryUnsigned, r)
    } else if let Some(r) = name.strip_prefix("linux-binary-") {
        (Role::Binary, r)
    } else if let Some(r) = name.strip_prefix("linux-base-") {
        (Role::Base, r)
    } else if let Some(r) = name.strip_prefix("linux-image-") {
        match r.strip_suffix("-unsigned") {
            Some(r) => (Role::ImageUnsigned, r),
            None => (Role::Image, r),
        }
    } else {
        return None;
    };
    let version = rest.strip_suffix(&format!("-{FLAVOUR}"))?;
    // "6.1.0-50", "6.12.117+deb13", "7.3": starts with major.minor, and every
    // further '-' part starts with a digit (rejects "-cloud", "-rt").
    let mut parts = version.split('-');
    let first = parts.next()?;
    major_minor(first)?;
    if !parts.all(|p| p.starts_with(|c: char| c.is_ascii_digit())) {
        return None;
    }
    Some((role, rest.to_string()))
}

/// "6.12" of "6.12.117+deb13-amd64" / "6.12.117-1" / "7.3~rc7-1~exp1".
pub(crate) fn major_minor(s: &str) -> Option<String> {
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?;
    if major.is_empty() || s.as_bytes().get(major.len()) != Some(&b'.') {
        return None;
    }
    let minor: String = s[major.len() + 1..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    if minor.is_empty() {
        return None;
    }
    Some(format!("{major}.{minor}"))
}

/// The upstream kernel version of a Debian package version:
/// "6.19.14-1~bpo13+1" → "6.19.14", "7.3~rc7-1~exp1" → "7.3", "6.1.176-1" → "6.1.176".
pub(crate) fn upstream_version(v: &str) -> String {
    let v = v.split_once(':').map(|(_, r)| r).unwrap_or(v);
    let v = v.rsplit_once('-').map(|(u, _)| u).unwrap_or(v);
    v.split(['~', '+']).next().unwrap_or(v).to_string()
}

/// A release that can be fetched: the package with the vmlinuz and the one
/// with the config.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    release: String,
    minor: String,
    kernel: PkgVersion,
    config: Option<PkgVersion>,
}

impl Candidate {
    fn available(&self) -> Available {
        Available {
            request: self.minor.clone(),
            release: self.release.clone(),
            package: self.kernel.name.clone(),
            package_version: self.kernel.version.clone(),
            suite: self.kernel.suite.clone(),
            config_package: self.config.as_ref().map(|c| c.name.clone()),
        }
    }
}

/// Newest version of each package (ties: the most stable suite).
fn newest_versions(versions: &[PkgVersion]) -> BTreeMap<String, PkgVersion> {
    let mut best: BTreeMap<String, PkgVersion> = BTreeMap::new();
    for v in versions {
        let replace = match best.get(&v.name) {
            None => true,
            Some(b) => match dpkg_cmp(&v.version, &b.version) {
                Ordering::Greater => true,
                Ordering::Equal => suite_rank(&v.suite) < suite_rank(&b.suite),
                Ordering::Less => false,
            },
        };
        if replace {
            best.insert(v.name.clone(), v.clone());
        }
    }
    best
}

/// Every fetchable release, oldest first.
fn candidates(versions: &[PkgVersion]) -> Vec<Candidate> {
    let newest = newest_versions(versions);
    let mut by_release: BTreeMap<String, BTreeMap<Role, PkgVersion>> = BTreeMap::new();
    for (name, v) in &newest {
        if let Some((role, release)) = classify_package(name) {
            by_release
                .entry(release)
                .or_default()
                .insert(role, v.clone());
        }
    }
    let mut out = Vec::new();
    for (release, roles) in by_release {
        // Binary < Image < BinaryUnsigned < ImageUnsigned (Base never holds a vmlinuz).
        let Some((&role, kernel)) = roles.iter().find(|(r, _)| **r != Role::Base) else {
            continue;
        };
        let config = match role {
            Role::Image | Role::ImageUnsigned => Some(kernel.clone()),
            _ => roles
                .get(&Role::Base)
                .filter(|b| b.version == kernel.version)
                .cloned(),
        };
        let Some(minor) = major_minor(&release) else {
            continue;
        };
        out.push(Candidate {
            release,
            minor,
            kernel: kernel.clone(),
            config,
        });
    }
    out.sort_by(|a, b| {
        dpkg_cmp(&a.kernel.version, &b.kernel.version).then(a.release.cmp(&b.release))
    });
    out
}

pub(crate) fn newest_per_minor(all: &[Available]) -> Vec<Available> {
    let mut best: BTreeMap<String, Available> = BTreeMap::new();
    for a in all {
        if best
            .get(&a.request)
            .is_none_or(|b| dpkg_cmp(&a.package_version, &b.package_version) == Ordering::Greater)
        {
            best.insert(a.request.clone(), a.clone());
        }
    }
    let mut out: Vec<Available> = best.into_values().collect();
    out.sort_by(|a, b| dpkg_cmp(&a.package_version, &b.package_version));
    out
}

/// Whether `release` / `package_version` answer `request` (see [`fetch`]).
pub(crate) fn matches(request: &str, release: &str, package_version: &str) -> bool {
    let r = request.trim();
    if r.is_empty() {
        return false;
    }
    if r == release || format!("{r}-{FLAVOUR}") == release {
        return true;
    }
    if r.split('.')
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        let up = upstream_version(package_version);
        return up == r || up.starts_with(&format!("{r}."));
    }
    false
}

/// The newest release of `all` answering `request`, or the not-available error.
pub(crate) fn select(request: &str, all: &[Available]) -> Result<Available, KernelError> {
    all.iter()
        .filter(|a| matches(request, &a.release, &a.package_version))
        .max_by(|a, b| dpkg_cmp(&a.package_version, &b.package_version))
        .cloned()
        .ok_or_else(|| not_available(request, all))
}

fn not_available(request: &str, all: &[Available]) -> KernelError {
    let available = newest_per_minor(all)
        .into_iter()
        .map(|a| a.request)
        .collect();
    let minor = major_minor(request.trim());
    let releases = all
        .iter()
        .filter(|a| minor.as_deref() == Some(a.request.as_str()))
        .map(|a| a.release.clone())
        .collect();
    KernelError::NotAvailable {
        request: request.to_string(),
        available,
        releases,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debian::apt::parse_madison;
    use crate::debian::apt::tests::madison_fixture;

    #[test]
    fn flavour_filtering() {
        assert_eq!(
            classify_package("linux-image-6.1.0-50-amd64"),
            Some((Role::Image, "6.1.0-50-amd64".into()))
        );
        assert_eq!(
            classify_package("linux-image-6.1.0-50-amd64-unsigned"),
            Some((Role::ImageUnsigned, "6.1.0-50-amd64".into()))
        );
        assert_eq!(
            classify_package("linux-binary-unsigned-7.3.4+deb13-amd64"),
            Some((Role::BinaryUnsigned, "7.3.4+deb13-amd64".into()))
        );
        assert_eq!(
            classify_package("linux-base-7.3-amd64"),
            Some((Role::Base, "7.3-amd64".into()))
        );
        for no in [
            "linux-image-6.1.0-50-cloud-amd64",
            "linux-image-6.1.0-50-rt-amd64",
            "linux-image-6.12.117+deb13-cloud-amd64-unsigned",
            "linux-image-6.1.0-50-amd64-dbg",
            "linux-image-amd64",
            "linux-image-cloud-amd64",
            "linux-image-amd64-signed-template",
            "linux-base-amd64",
            "linux-binary-7.3-rt-amd64",
            "linux-headers-6.1.0-50-amd64",
            "linux-image-6.1.0-50-arm64",
        ] {
            assert_eq!(classify_package(no), None, "{no}");
        }
    }

    fn fixture_releases() -> Vec<Available> {
        let pv = parse_madison(&madison_fixture());
        let names: Vec<&str> = pv.iter().map(|p| p.name.as_str()).collect();
        assert!(names.iter().all(|n| classify_package(n).is_some()));
        candidates(&pv).into_iter().map(|c| c.available()).collect()
    }

    #[test]
    fn package_choice_per_release() {
        let all = fixture_releases();
        let by = |r: &str| {
            all.iter()
                .find(|a| a.release == r)
                .unwrap_or_else(|| panic!("{r} in {all:#?}"))
        };
        let k = by("6.1.0-50-amd64");
        assert_eq!(
            (k.package.as_str(), k.config_package.as_deref()),
            (
                "linux-image-6.1.0-50-amd64",
                Some("linux-image-6.1.0-50-amd64")
            )
        );
        let k = by("6.12.117+deb13-amd64");
        assert_eq!(
            k.suite, "trixie",
            "same version in trixie and sid: the more stable suite"
        );
        let k = by("6.19.14+deb13-amd64");
        assert_eq!(
            (k.package.as_str(), k.config_package.as_deref()),
            ("linux-binary-6.19.14+deb13-amd64", None)
        );
        let k = by("7.3.4+deb13-amd64");
        assert_eq!(
            (k.package.as_str(), k.config_package.as_deref()),
            (
                "linux-binary-7.3.4+deb13-amd64",
                Some("linux-base-7.3.4+deb13-amd64")
            )
        );
        let k = by("7.2.9+deb13-amd64");
        assert_eq!(k.package, "linux-binary-unsigned-7.2.9+deb13-amd64");
    }

    #[test]
    fn newest_per_major_minor() {
        let all = fixture_releases();
        let v = newest_per_minor(&all);
        let got: Vec<(&str, &str)> = v
            .iter()
            .map(|a| (a.request.as_str(), a.release.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("6.1", "6.1.0-50-amd64"),
                ("6.12", "6.12.117+deb13-amd64"),
                ("6.18", "6.18.15+deb13-amd64"),
                ("6.19", "6.19.14+deb13-amd64"),
                ("7.2", "7.2.9+deb13-amd64"),
                ("7.3", "7.3.4+deb13-amd64"),
            ]
        );
    }

    #[test]
    fn request_selection() {
        let all = fixture_releases();
        let sel = |r: &str| select(r, &all).map(|a| a.release);
        assert_eq!(sel("6.1").unwrap(), "6.1.0-50-amd64");
        assert_eq!(sel("6.12").unwrap(), "6.12.117+deb13-amd64");
        assert_eq!(sel("6.12.95").unwrap(), "6.12.95+deb12-amd64");
        assert_eq!(sel("6.12.95+deb12-amd64").unwrap(), "6.12.95+deb12-amd64");
        assert_eq!(sel("6.12.95+deb12").unwrap(), "6.12.95+deb12-amd64");
        assert_eq!(sel("6.1.0-47-amd64").unwrap(), "6.1.0-47-amd64");
        assert_eq!(sel("6.1.170").unwrap(), "6.1.0-47-amd64");
        assert_eq!(sel("6.19").unwrap(), "6.19.14+deb13-amd64");
        assert_eq!(sel("6.19.8").unwrap(), "6.19.8+deb13-amd64");
        assert_eq!(
            sel("7.3").unwrap(),
            "7.3.4+deb13-amd64",
            "7.3.4 is newer than 7.3~rc7"
        );
        assert_eq!(sel("7.3-amd64").unwrap(), "7.3-amd64");
        assert_eq!(sel("7").unwrap(), "7.3.4+deb13-amd64");
        assert!(sel("6.1.17").is_err(), "6.1.17 is not a prefix of 6.1.170");
        assert!(sel("6.12.117+deb13-cloud-amd64").is_err());
        assert!(sel("").is_err());
    }

    #[test]
    fn not_available_lists_what_is() {
        let all = fixture_releases();
        let e = select("6.5", &all).unwrap_err();
        assert_eq!(
            e.to_string(),
            "kernel 6.5 is not available; available: 6.1, 6.12, 6.18, 6.19, 7.2, 7.3"
        );
        let e = select("6.12.200", &all).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("kernel 6.12.200 is not available; available: 6.1, 6.12, "),
            "{msg}"
        );
        assert!(
            msg.contains("releases of that version: 6.12.95+deb12-amd64, 6.12.117+deb13-amd64"),
            "{msg}"
        );
    }

    #[test]
    fn upstream_and_minor() {
        assert_eq!(upstream_version("6.19.14-1~bpo13+1"), "6.19.14");
        assert_eq!(upstream_version("7.3~rc7-1~exp1"), "7.3");
        assert_eq!(upstream_version("6.1.176-1"), "6.1.176");
        assert_eq!(major_minor("6.12.117+deb13-amd64").as_deref(), Some("6.12"));
        assert_eq!(major_minor("7.3-amd64").as_deref(), Some("7.3"));
        assert_eq!(major_minor("7"), None);
        assert_eq!(major_minor("amd64"), None);
    }
}
