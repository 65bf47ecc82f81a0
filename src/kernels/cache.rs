//! The kernel cache: `<cache_root>/<release>/{vmlinuz,config,meta.json}`,
//! each entry built in a temp dir and renamed into place (see the module docs
//! of [`crate::kernels`]).

use super::select::matches;
use super::{Available, KernelError, KernelImage};
use crate::debian::apt::{give_to_apt_user, Apt, LISTS_MAX_AGE};
use crate::debian::deb::{self, version_cmp as dpkg_cmp};
use crate::debian::{
    clean_stale_temps, io_err, now_secs, sha256_file, temp_entry, write_synced, DebianError,
};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Temp dirs of fetches older than this are removed even if their process lives.
pub(super) const STALE_AGE: Duration = LISTS_MAX_AGE;

/// `meta.json` of a cache entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    request: String,
    release: String,
    package: String,
    package_version: String,
    suite: String,
    /// Path of the vmlinuz inside the package, e.g. "usr/lib/modules/R/vmlinuz".
    vmlinuz_member: String,
    config_package: Option<String>,
    config_member: Option<String>,
    /// Every .deb that was downloaded (and deleted after extraction).
    debs: Vec<DebMeta>,
    /// Seconds since the epoch.
    fetched_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DebMeta {
    package: String,
    version: String,
    file: String,
    size: u64,
    sha256: String,
}

pub(super) fn read_entry(dir: &Path) -> Option<KernelImage> {
    let meta: Meta = serde_json::from_slice(&fs::read(dir.join("meta.json")).ok()?).ok()?;
    let vmlinuz = dir.join("vmlinuz");
    if !vmlinuz.is_file() {
        return None;
    }
    let config = dir.join("config");
    let config = config.is_file().then_some(config);
    Some(KernelImage {
        request: meta.request,
        release: meta.release,
        package: meta.package,
        package_version: meta.package_version,
        suite: meta.suite,
        vmlinuz,
        config_package: if config.is_some() {
            meta.config_package
        } else {
            None
        },
        config,
        dir: dir.to_path_buf(),
    })
}

pub(super) fn cached_in(root: &Path) -> Vec<KernelImage> {
    let Ok(rd) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out: Vec<KernelImage> = rd
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| read_entry(&e.path()))
        .collect();
    out.sort_by(|a, b| {
        dpkg_cmp(&a.package_version, &b.package_version).then(a.release.cmp(&b.release))
    });
    out
}

pub(super) fn find_cached_in(root: &Path, request: &str) -> Option<KernelImage> {
    let mut k = cached_in(root)
        .into_iter()
        .filter(|k| matches(request, &k.release, &k.package_version))
        .max_by(|a, b| dpkg_cmp(&a.package_version, &b.package_version))?;
    k.request = request.to_string();
    Some(k)
}

/// Files a kernel package may hold, relative to its root (tar wildcards).
const MEMBER_PATTERNS: [&str; 6] = [
    "./boot/vmlinuz-*",
    "./boot/config-*",
    "./usr/lib/modules/*/vmlinuz*",
    "./usr/lib/modules/*/config",
    "./lib/modules/*/vmlinuz*",
    "./lib/modules/*/config",
];

/// Find the vmlinuz and config of `release` in an extraction directory.
pub(super) fn locate(x: &Path, release: &str) -> (Option<PathBuf>, Option<PathBuf>) {
    let vmlinuz = [
        format!("boot/vmlinuz-{release}"),
        format!("usr/lib/modules/{release}/vmlinuz"),
        format!("lib/modules/{release}/vmlinuz"),
        format!("usr/lib/modules/{release}/vmlinuz.unsigned"),
        format!("lib/modules/{release}/vmlinuz.unsigned"),
    ]
    .iter()
    .find_map(|p| deb::resolve_in(x, &x.join(p)));
    let config = [
        format!("boot/config-{release}"),
        format!("usr/lib/modules/{release}/config"),
        format!("lib/modules/{release}/config"),
    ]
    .iter()
    .find_map(|p| deb::resolve_in(x, &x.join(p)));
    (vmlinuz, config)
}

/// Whether `path` starts like a bzImage: "HdrS" at offset 0x202.
pub fn is_bzimage(path: &Path) -> bool {
    let mut buf = [0u8; 0x206];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok()
        && &buf[0x202..0x206] == b"HdrS"
}

/// Download, extract and store one release; atomic (temp dir + rename).
pub(super) fn store(
    apt: &Apt,
    root: &Path,
    request: &str,
    cand: &Available,
    log: &mut dyn FnMut(&str),
) -> Result<KernelImage, KernelError> {
    let started = Instant::now();
    clean_stale_temps(root, STALE_AGE);
    let tmp = temp_entry(root, &cand.release)?;
    let deb_dir = tmp.path().join("deb");
    let x = tmp.path().join("x");
    let entry = tmp.path().join("entry");
    for d in [&deb_dir, &x, &entry] {
        fs::create_dir_all(d).map_err(io_err(d))?;
    }
    give_to_apt_user(&deb_dir);

    let mut pkgs = vec![(cand.package.clone(), cand.package_version.clone())];
    if let Some(c) = &cand.config_package {
        if *c != cand.package {
            pkgs.push((c.clone(), cand.package_version.clone()));
        }
    }
    let names: Vec<String> = pkgs.iter().map(|(n, v)| format!("{n} {v}")).collect();
    log(&format!(
        "{request}: downloading {} from {}",
        names.join(" + "),
        cand.suite
    ));
    let debs = apt.download(&pkgs, &deb_dir)?;
    let downloaded = started.elapsed();

    let mut deb_meta = Vec::new();
    let mut config_from = None;
    let mut vmlinuz_from = None;
    for (file, name, version) in &debs {
        let size = fs::metadata(file).map_err(io_err(file))?.len();
        let sha256 = sha256_file(file)?;
        let px = x.join(name);
        fs::create_dir_all(&px).map_err(io_err(&px))?;
        deb::extract_members(file, &px, &MEMBER_PATTERNS)?;
        let (v, c) = locate(&px, &cand.release);
        if vmlinuz_from.is_none() {
            vmlinuz_from = v.map(|p| (p, name.clone(), px.clone()));
        }
        if config_from.is_none() {
            config_from = c.map(|p| (p, name.clone(), px.clone()));
        }
        deb_meta.push(DebMeta {
            package: name.clone(),
            version: version.clone(),
            file: file
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string(),
            size,
            sha256,
        });
        // The packages are big: drop each as soon as it is read.
        fs::remove_file(file).map_err(io_err(file))?;
    }
    let Some((vsrc, vpkg, vroot)) = vmlinuz_from else {
        return Err(DebianError::Package {
            package: cand.package.clone(),
            version: cand.package_version.clone(),
            what: format!(
                "no vmlinuz for {} inside (looked for {})",
                cand.release,
                MEMBER_PATTERNS.join(", ")
            ),
        }
        .into());
    };
    if !is_bzimage(&vsrc) {
        return Err(DebianError::Package {
            package: vpkg,
            version: cand.package_version.clone(),
            what: format!("{} is not a bzImage (no \"HdrS\" at 0x202)", vsrc.display()),
        }
        .into());
    }
    let member = |p: &Path, r: &Path| p.strip_prefix(r).unwrap_or(p).display().to_string();
    let vdst = entry.join("vmlinuz");
    fs::rename(&vsrc, &vdst).map_err(io_err(&vsrc))?;
    let vmlinuz_member = member(&vsrc, &vroot);
    let (config_package, config_member) = match &config_from {
        Some((csrc, cpkg, croot)) => {
            let cdst = entry.join("config");
            fs::rename(csrc, &cdst).map_err(io_err(csrc))?;
            (Some(cpkg.clone()), Some(member(csrc, croot)))
        }
        None => (None, None),
    };
    let meta = Meta {
        request: request.to_string(),
        release: cand.release.clone(),
        package: vpkg,
        package_version: cand.package_version.clone(),
        suite: cand.suite.clone(),
        vmlinuz_member,
        config_package,
        config_member,
        debs: deb_meta,
        fetched_at: now_secs(),
    };
    let json = serde_json::to_vec_pretty(&meta).expect("meta serialises");
    write_synced(&entry.join("meta.json"), &json)?;

    let dest = root.join(&cand.release);
    match fs::rename(&entry, &dest) {
        Ok(()) => {}
        // Another process stored the same release meanwhile: use theirs.
        Err(_) if read_entry(&dest).is_some() => {}
        Err(e) => {
            return Err(DebianError::Io {
                path: dest,
                source: e,
            }
            .into())
        }
    }
    drop(tmp);
    let mut k = read_entry(&dest).ok_or_else(|| DebianError::Io {
        path: dest.join("meta.json"),
        source: std::io::Error::other("entry unreadable right after it was stored"),
    })?;
    k.request = request.to_string();
    let total: u64 = meta.debs.iter().map(|d| d.size).sum();
    log(&format!(
        "{request}: stored {} in {} ({:.1} MB downloaded in {:.1}s, {:.1}s in all; config: {})",
        k.release,
        k.dir.display(),
        total as f64 / 1e6,
        downloaded.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        k.config_package.as_deref().unwrap_or("none in the archive"),
    ));
    Ok(k)
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::fetch_in;
    use super::super::select::major_minor;
    use super::*;

    pub(crate) fn fake_entry(root: &Path, release: &str, version: &str, with_config: bool) {
        let d = root.join(release);
        fs::create_dir_all(&d).unwrap();
        let mut img = vec![0u8; 0x400];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        fs::write(d.join("vmlinuz"), img).unwrap();
        if with_config {
            fs::write(d.join("config"), "CONFIG_BPF=y\n").unwrap();
        }
        let meta = Meta {
            request: major_minor(release).unwrap(),
            release: release.into(),
            package: format!("linux-image-{release}"),
            package_version: version.into(),
            suite: "trixie".into(),
            vmlinuz_member: format!("boot/vmlinuz-{release}"),
            config_package: with_config.then(|| format!("linux-image-{release}")),
            config_member: with_config.then(|| format!("boot/config-{release}")),
            debs: vec![],
            fetched_at: 0,
        };
        fs::write(d.join("meta.json"), serde_json::to_vec(&meta).unwrap()).unwrap();
    }

    #[test]
    fn cache_listing_and_lookup() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fake_entry(root, "6.12.117+deb13-amd64", "6.12.117-1", true);
        fake_entry(root, "6.1.0-50-amd64", "6.1.176-1", true);
        fake_entry(root, "6.12.95+deb12-amd64", "6.12.95-1~bpo12+1", true);
        fake_entry(root, "7.0.13+deb13-amd64", "7.0.13-1~bpo13+1", false);
        // A half entry (no meta.json), an interrupted fetch and the apt state are not entries.
        fs::create_dir_all(root.join("6.16.12+deb13-amd64")).unwrap();
        fs::create_dir_all(root.join(".tmp-6.17.13+deb13-amd64-x")).unwrap();
        fs::create_dir_all(root.join("apt/lists")).unwrap();
        let c = cached_in(root);
        let rels: Vec<&str> = c.iter().map(|k| k.release.as_str()).collect();
        assert_eq!(
            rels,
            vec![
                "6.1.0-50-amd64",
                "6.12.95+deb12-amd64",
                "6.12.117+deb13-amd64",
                "7.0.13+deb13-amd64"
            ]
        );
        assert!(is_bzimage(&c[0].vmlinuz));
        assert_eq!(c[3].config, None);
        let k = find_cached_in(root, "6.12").unwrap();
        assert_eq!(
            (k.request.as_str(), k.release.as_str()),
            ("6.12", "6.12.117+deb13-amd64")
        );
        assert_eq!(
            find_cached_in(root, "6.12.95+deb12").unwrap().release,
            "6.12.95+deb12-amd64"
        );
        assert!(find_cached_in(root, "6.16").is_none());
        // Cached requests are answered without apt.
        let r = fetch_in(
            root,
            &Apt::new(&root.join("apt")),
            &["6.1".to_string(), "7.0".to_string()],
            &mut |_| {},
        );
        assert_eq!(r[0].as_ref().unwrap().release, "6.1.0-50-amd64");
        assert_eq!(r[1].as_ref().unwrap().release, "7.0.13+deb13-amd64");
    }

    #[test]
    fn stale_temp_dirs_of_dead_fetches_are_removed() {
        let t = tempfile::tempdir().unwrap();
        let mine = t
            .path()
            .join(format!(".tmp-{}-6.1.0-50-amd64-abc", std::process::id()));
        // pid_max is at most 2^22, so this pid does not exist.
        let dead = t.path().join(".tmp-99999999-6.1.0-50-amd64-abc");
        let entry = t.path().join("6.1.0-50-amd64");
        for d in [&mine, &dead, &entry] {
            fs::create_dir_all(d).unwrap();
        }
        clean_stale_temps(t.path(), STALE_AGE);
        assert!(mine.exists() && entry.exists());
        assert!(!dead.exists());
    }

    #[test]
    fn locate_finds_old_and_new_layouts() {
        let t = tempfile::tempdir().unwrap();
        let x = t.path();
        let r = "7.3.4+deb13-amd64";
        fs::create_dir_all(x.join(format!("usr/lib/modules/{r}"))).unwrap();
        fs::write(x.join(format!("usr/lib/modules/{r}/vmlinuz")), b"k").unwrap();
        fs::write(x.join(format!("usr/lib/modules/{r}/config")), b"c").unwrap();
        let (v, c) = locate(x, r);
        assert!(v.unwrap().ends_with("vmlinuz") && c.unwrap().ends_with("config"));
        let r = "6.1.0-50-amd64";
        fs::create_dir_all(x.join("boot")).unwrap();
        fs::write(x.join(format!("boot/vmlinuz-{r}")), b"k").unwrap();
        let (v, c) = locate(x, r);
        assert!(v.is_some() && c.is_none());
    }

    /// Fetches into a private cache so the test does not depend on (or
    /// change) the user's; the apt lists are downloaded too.
    #[test]
    fn fetch_6_1_for_real() {
        let t = tempfile::tempdir().unwrap();
        let apt = Apt::new(&t.path().join("apt"));
        let r = fetch_in(t.path(), &apt, &["6.1".to_string()], &mut |l| {
            eprintln!("{l}")
        });
        let k = r.into_iter().next().unwrap().unwrap();
        assert!(k.release.starts_with("6.1."), "{}", k.release);
        let bytes = fs::read(&k.vmlinuz).unwrap();
        assert_eq!(&bytes[0x202..0x206], b"HdrS");
        let config = fs::read_to_string(k.config.as_ref().expect("6.1 ships its config")).unwrap();
        assert!(config.contains("CONFIG_BPF=y"));
        // No .deb or temp dir is left behind.
        let leftovers: Vec<String> = fs::read_dir(t.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n != "apt" && *n != k.release)
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        // A second fetch is answered from the cache.
        let again = fetch_in(t.path(), &apt, &["6.1".to_string()], &mut |_| {})
            .pop()
            .unwrap()
            .unwrap();
        assert_eq!(again.dir, k.dir);
    }
}
