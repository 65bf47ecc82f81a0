//! Where a kernel comes from: Debian's archive, or a local image.
//!
//! A `--kernels` entry is parsed by one explicit rule ([`KernelSource::parse`]):
//!
//! 1. `image:PATH` is a local kernel image, `debian:REQUEST` a Debian kernel;
//! 2. otherwise an entry that reads as a Debian kernel request (it starts with
//!    a digit and holds only `0-9 a-z . + ~ -`: `6.1`, `6.12.117`,
//!    `6.12.117+deb13-amd64`, `7`) is one, whatever files exist;
//! 3. otherwise the path of an existing file (checked with `is_file()`) is a
//!    local image;
//! 4. anything else is an error that says so (never a guess: a missing
//!    `./build/bzImage` is not sent to apt).
//!
//! A local image (a bzImage or vmlinuz: a developer's own build, or a
//! deliberately broken image in tests) is labelled by its file name, and its
//! config is a `config` or `.config` file beside it, if there is one.

use super::{fetch_in, KernelError, KernelImage};
use crate::debian::apt::Apt;
use std::path::{Path, PathBuf};

/// One kernel to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSource {
    /// A Debian kernel request, as [`super::fetch`] takes it: "6.12", "6.12.117",
    /// "6.12.117+deb13-amd64", "7".
    Debian(String),
    /// A local kernel image file.
    Image(PathBuf),
}

/// Whether `s` reads as a Debian kernel request (rule 2 of the module docs).
fn is_debian_request(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_digit())
        && s.bytes().all(|b| {
            b.is_ascii_digit() || b.is_ascii_lowercase() || matches!(b, b'.' | b'+' | b'~' | b'-')
        })
}

impl KernelSource {
    /// Parse one `--kernels` entry by the rule of the module docs.
    pub fn parse(entry: &str) -> Result<KernelSource, KernelError> {
        let s = entry.trim();
        if let Some(p) = s.strip_prefix("image:") {
            return Ok(KernelSource::Image(PathBuf::from(p)));
        }
        if let Some(r) = s.strip_prefix("debian:") {
            return Ok(KernelSource::Debian(r.to_string()));
        }
        if is_debian_request(s) {
            return Ok(KernelSource::Debian(s.to_string()));
        }
        if !s.is_empty() && Path::new(s).is_file() {
            return Ok(KernelSource::Image(PathBuf::from(s)));
        }
        Err(KernelError::BadSource(format!(
            "{entry}: not a file, and not a Debian kernel version such as 6.12, 6.12.117 or \
             6.12.117+deb13-amd64 (write image:PATH for a kernel image file)"
        )))
    }

    /// The column label: the Debian request, or the image's file name.
    pub fn label(&self) -> String {
        match self {
            KernelSource::Debian(r) => r.clone(),
            KernelSource::Image(p) => image_label(p),
        }
    }
}

impl std::str::FromStr for KernelSource {
    type Err = KernelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KernelSource::parse(s)
    }
}

impl std::fmt::Display for KernelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KernelSource::Debian(r) => write!(f, "{r}"),
            KernelSource::Image(p) => write!(f, "image:{}", p.display()),
        }
    }
}

fn image_label(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// A local kernel image: labelled by its file name, with the `config` or
/// `.config` beside it as its config.
pub fn local_image(path: &Path) -> Result<KernelImage, KernelError> {
    if !path.is_file() {
        return Err(KernelError::NoImage(path.to_path_buf()));
    }
    let dir = path.parent().map(PathBuf::from).unwrap_or_default();
    let config = ["config", ".config"]
        .iter()
        .map(|n| dir.join(n))
        .find(|c| c.is_file());
    Ok(KernelImage {
        request: image_label(path),
        release: String::new(),
        package: "(local file)".into(),
        package_version: String::new(),
        suite: String::new(),
        vmlinuz: path.to_path_buf(),
        config,
        config_package: None,
        dir,
    })
}

/// Resolve each source to an image, in order: local images as they are,
/// Debian requests through [`super::fetch`] (all of them in one batch).
pub fn resolve(sources: &[KernelSource]) -> Vec<Result<KernelImage, KernelError>> {
    resolve_with_log(sources, &mut |_| {})
}

/// [`resolve`], reporting the progress of Debian fetches to `log`.
pub fn resolve_with_log(
    sources: &[KernelSource],
    log: &mut dyn FnMut(&str),
) -> Vec<Result<KernelImage, KernelError>> {
    let parsed: Vec<Result<KernelSource, KernelError>> = sources.iter().cloned().map(Ok).collect();
    resolve_parsed(parsed, &super::cache_root(), None, log)
}

/// Parse and resolve `--kernels` entries: one result per entry, in order (an
/// entry that does not parse is that entry's error, the others go on).
pub fn resolve_requests(entries: &[String]) -> Vec<Result<KernelImage, KernelError>> {
    let parsed = entries.iter().map(|e| KernelSource::parse(e)).collect();
    resolve_parsed(parsed, &super::cache_root(), None, &mut |_| {})
}

fn resolve_parsed(
    parsed: Vec<Result<KernelSource, KernelError>>,
    root: &Path,
    apt: Option<&Apt>,
    log: &mut dyn FnMut(&str),
) -> Vec<Result<KernelImage, KernelError>> {
    let debian: Vec<String> = parsed
        .iter()
        .filter_map(|p| match p {
            Ok(KernelSource::Debian(r)) => Some(r.clone()),
            _ => None,
        })
        .collect();
    let mut fetched = if debian.is_empty() {
        Vec::new()
    } else {
        match apt {
            Some(a) => fetch_in(root, a, &debian, log),
            None => fetch_in(root, &Apt::shared(), &debian, log),
        }
    }
    .into_iter();
    parsed
        .into_iter()
        .map(|p| match p {
            Ok(KernelSource::Debian(_)) => fetched.next().expect("one result per request"),
            Ok(KernelSource::Image(path)) => local_image(&path),
            Err(e) => Err(e),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn parse_rule() {
        let t = tempfile::tempdir().unwrap();
        let img = t.path().join("bzImage");
        fs::write(&img, b"k").unwrap();
        let img_s = img.display().to_string();
        let deb = |s: &str| Ok::<_, String>(KernelSource::Debian(s.into()));
        let p = |s: &str| KernelSource::parse(s).map_err(|e| e.to_string());
        for r in [
            "6.1",
            "6.12.117",
            "6.12.117+deb13-amd64",
            "7",
            "7.3~rc7",
            " 6.12 ",
        ] {
            assert_eq!(p(r), deb(r.trim()), "{r}");
        }
        assert_eq!(p(&img_s), Ok(KernelSource::Image(img.clone())));
        assert_eq!(
            p(&format!("image:{img_s}")),
            Ok(KernelSource::Image(img.clone()))
        );
        // image: is taken at its word: a missing file fails when resolved.
        assert_eq!(
            p("image:/nonexistent/bzImage"),
            Ok(KernelSource::Image("/nonexistent/bzImage".into()))
        );
        assert_eq!(p("debian:6.12"), deb("6.12"));
        // A missing path is neither, and is not sent to apt.
        let e = p("/nonexistent/bzImage").unwrap_err();
        assert!(
            e.contains("not a file, and not a Debian kernel version"),
            "{e}"
        );
        assert!(e.contains("image:PATH"), "{e}");
        assert!(p("").is_err());
        // A directory is not a kernel image.
        assert!(p(&t.path().display().to_string()).is_err());
        assert_eq!(
            KernelSource::Image(img.clone()).to_string(),
            format!("image:{img_s}")
        );
        assert_eq!(KernelSource::Image(img).label(), "bzImage");
    }

    #[test]
    fn local_image_label_and_config_beside_it() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("build");
        fs::create_dir_all(&d).unwrap();
        let img = d.join("bzImage");
        fs::write(&img, b"k").unwrap();
        let k = local_image(&img).unwrap();
        assert_eq!(
            (k.request.as_str(), k.package.as_str(), k.config.as_ref()),
            ("bzImage", "(local file)", None)
        );
        assert_eq!((k.vmlinuz.clone(), k.dir.clone()), (img.clone(), d.clone()));
        fs::write(d.join(".config"), "CONFIG_BPF=y\n").unwrap();
        assert_eq!(local_image(&img).unwrap().config, Some(d.join(".config")));
        fs::write(d.join("config"), "CONFIG_BPF=y\n").unwrap();
        assert_eq!(local_image(&img).unwrap().config, Some(d.join("config")));
        let e = local_image(&d.join("missing")).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("{}: no such kernel image file", d.join("missing").display())
        );
    }

    /// Mixed sources keep their order; Debian ones come from the cache here
    /// (no apt: every request is cached), a bad entry fails alone.
    #[test]
    fn resolve_keeps_order_and_errors_per_entry() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("kernels");
        super::super::cache::tests::fake_entry(&root, "6.1.0-50-amd64", "6.1.176-1", true);
        super::super::cache::tests::fake_entry(
            &root,
            "7.3.4+deb13-amd64",
            "7.3.4-1~bpo13+1",
            false,
        );
        let img = t.path().join("bzImage");
        fs::write(&img, b"k").unwrap();
        let entries = [
            "7.3".to_string(),
            img.display().to_string(),
            "/nonexistent/bzImage".to_string(),
            "6.1".to_string(),
        ];
        let parsed = entries.iter().map(|e| KernelSource::parse(e)).collect();
        let apt = Apt::new(&t.path().join("apt"));
        let r = resolve_parsed(parsed, &root, Some(&apt), &mut |_| {});
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].as_ref().unwrap().release, "7.3.4+deb13-amd64");
        assert_eq!(r[0].as_ref().unwrap().request, "7.3");
        assert_eq!(r[1].as_ref().unwrap().request, "bzImage");
        assert!(r[2].is_err());
        assert_eq!(r[3].as_ref().unwrap().release, "6.1.0-50-amd64");
    }

    /// The lines `src/matrix/run.rs` is to use instead of its `contains('/')`
    /// partition and `image_from_path`, verbatim (no Debian entry here, so no
    /// apt and no cache is touched).
    #[test]
    fn matrix_run_replacement() {
        use crate::kernels;
        let t = tempfile::tempdir().unwrap();
        let img = t.path().join("bzImage");
        fs::write(&img, b"k").unwrap();
        let requests: Vec<String> = vec![img.display().to_string(), "/nonexistent/bzImage".into()];
        // --- as in matrix_run.rs:
        let mut resolved: std::collections::HashMap<String, Result<KernelImage, String>> =
            std::collections::HashMap::new();
        for (r, img) in requests
            .iter()
            .zip(kernels::source::resolve_requests(&requests))
        {
            resolved.insert(r.clone(), img.map_err(|e| e.to_string()));
        }
        // ---
        assert_eq!(resolved[&requests[0]].as_ref().unwrap().request, "bzImage");
        assert!(resolved[&requests[1]]
            .as_ref()
            .unwrap_err()
            .starts_with("/nonexistent/bzImage: not a file"));
    }
}
