//! `probeconf matrix`: fetch kernels, build one image, boot every kernel under
//! QEMU (several at once), and turn each VM's JSON Lines into a column of the
//! matrix. A kernel that is missing, panics, hangs or breaks the guest gets an
//! `error` column with its console tail; the other columns complete.

use crate::case::{discover, Case, LoaderId};
use crate::kernels::{self, KernelImage};
use crate::matrix::{config_flags, CaseMeta, ColumnStatus, KernelColumn, Matrix};
use crate::runner::CaseResult;
use crate::vm::{boot_many, BootOptions, BootOutcome, BootStatus, GuestMode, GuestOptions, ImageSpec};
use std::path::PathBuf;
use std::time::Duration;

pub struct MatrixOptions {
    /// Kernel requests ("6.12", an exact release, …).
    pub kernels: Vec<String>,
    /// Case files or directories.
    pub cases: Vec<PathBuf>,
    pub loaders: Vec<LoaderId>,
    /// Per kernel column.
    pub timeout: Duration,
    /// VMs at once (0 = number of cores).
    pub parallel: usize,
    /// Where the image and each VM's console/results logs are kept.
    pub work_dir: PathBuf,
    pub target_timeout_s: u64,
}

fn utc_now() -> String {
    // Seconds since the epoch rendered as UTC without a date crate.
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let days = secs / 86_400;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    // Civil-from-days (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if mo <= 2 { 1 } else { 0 };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

fn error_column(request: &str, release: &str, reason: String, console_tail: String, wall: f64) -> KernelColumn {
    KernelColumn {
        request: request.into(),
        release: release.into(),
        status: ColumnStatus::Error { reason, console_tail },
        features: None,
        config: Default::default(),
        results: Vec::new(),
        wall_secs: wall,
    }
}

/// One VM's lines → its column.
fn column_from(img: &KernelImage, out: &BootOutcome) -> KernelColumn {
    let wall = out.wall.as_secs_f64();
    let config = img.config.as_ref().and_then(|p| std::fs::read_to_string(p).ok()).map(|t| config_flags(&t)).unwrap_or_default();
    let release = out.hello().and_then(|h| h["kernel"].as_str()).unwrap_or(&img.release).to_string();
    let status = match &out.status {
        BootStatus::Completed { .. } => ColumnStatus::Completed,
        BootStatus::Panicked => ColumnStatus::Error { reason: "kernel panic".into(), console_tail: out.console_tail.clone() },
        BootStatus::TimedOut => ColumnStatus::Error {
            reason: format!("timed out after {:.0} s", wall),
            console_tail: out.console_tail.clone(),
        },
        BootStatus::QemuFailed(e) => ColumnStatus::Error { reason: format!("qemu failed: {e}"), console_tail: out.console_tail.clone() },
        BootStatus::Incomplete(e) => ColumnStatus::Error { reason: format!("guest did not finish: {e}"), console_tail: out.console_tail.clone() },
    };
    let features = out
        .lines
        .iter()
        .find(|l| l["type"] == "features")
        .and_then(|l| serde_json::from_value(l["features"].clone()).ok());
    let results: Vec<CaseResult> = out
        .lines
        .iter()
        .filter(|l| l["type"] == "result")
        .filter_map(|l| serde_json::from_value(l["result"].clone()).ok())
        .collect();
    let mut col = KernelColumn { request: img.request.clone(), release, status, features, config, results, wall_secs: wall };
    if col.config.is_empty() {
        // No config package in the archive for this release: say so per flag.
        col.config = crate::matrix::CONFIG_FLAGS.iter().map(|f| (f.to_string(), "?".to_string())).collect();
    }
    col
}

/// Runs the whole matrix. `progress` gets one line per event (fetch, boot done).
pub fn run(opts: &MatrixOptions, mut progress: impl FnMut(String)) -> Result<Matrix, String> {
    std::fs::create_dir_all(&opts.work_dir).map_err(|e| format!("{}: {e}", opts.work_dir.display()))?;
    // Cases, for the row list (the guest reads the same files).
    let files = discover(&opts.cases).map_err(|e| e.to_string())?;
    let mut cases = Vec::new();
    for f in &files {
        match Case::load(f) {
            Ok(c) => cases.push(c),
            Err(e) => return Err(format!("{e}")),
        }
    }
    let metas: Vec<CaseMeta> = cases
        .iter()
        .map(|c| CaseMeta {
            id: c.id.clone(),
            group: c.probes.first().map(|p| p.kind.section().to_string()).unwrap_or_default(),
            description: c.description.clone(),
        })
        .collect();

    // Kernels: a missing one becomes an error column, not the end of the run.
    let mut images: Vec<(String, Result<KernelImage, String>)> = Vec::new();
    for (req, r) in opts.kernels.iter().zip(kernels::fetch(&opts.kernels)) {
        match &r {
            Ok(img) => progress(format!("{req}: {} ({})", img.release, img.vmlinuz.display())),
            Err(e) => progress(format!("{req}: {e}")),
        }
        images.push((req.clone(), r.map_err(|e| e.to_string())));
    }

    let initramfs = opts.work_dir.join("initramfs.cpio");
    let size = crate::vm::image::write(&ImageSpec { init: None, harness: None, cases: files.clone() }, &initramfs)?;
    progress(format!("image: {} ({:.1} MB, {} cases)", initramfs.display(), size as f64 / 1e6, cases.len()));

    let guest = GuestOptions {
        mode: GuestMode::Run,
        loaders: opts.loaders.clone(),
        target_timeout_s: opts.target_timeout_s,
        ..GuestOptions::default()
    };
    let mut jobs = Vec::new();
    let mut job_image = Vec::new();
    for (i, (_, img)) in images.iter().enumerate() {
        if let Ok(img) = img {
            let mut b = BootOptions::new(&img.vmlinuz, &initramfs);
            b.kernel_cmdline_extra = guest.to_kernel_args();
            b.timeout = opts.timeout;
            b.work_dir = Some(opts.work_dir.join(format!("vm-{}", img.release)));
            jobs.push(b);
            job_image.push(i);
        }
    }
    let total = jobs.len();
    let mut done = 0;
    let outcomes = boot_many(jobs, opts.parallel, |j, out| {
        done += 1;
        let (req, _) = &images[job_image[j]];
        let summary = out
            .done()
            .map(|d| format!("{} runs: {} pass, {} fail, {} unsupported, {} error", d["counts"]["runs"], d["counts"]["pass"], d["counts"]["fail"], d["counts"]["unsupported"], d["counts"]["error"]))
            .unwrap_or_else(|| format!("{:?}", out.status));
        progress(format!("[{done}/{total}] {req}: {:.0} s — {summary}", out.wall.as_secs_f64()));
    });

    let mut kernels_out = Vec::new();
    let mut outcome_iter = outcomes.into_iter();
    for (req, img) in &images {
        match img {
            Ok(img) => {
                let out = outcome_iter.next().expect("one outcome per job");
                kernels_out.push(column_from(img, &out));
            }
            Err(e) => kernels_out.push(error_column(req, "", format!("kernel not available: {e}"), String::new(), 0.0)),
        }
    }
    let mut libraries = vec![crate::loader::Loader::library(&crate::loader::libbpf::LibbpfLoader)];
    if opts.loaders.contains(&LoaderId::Cilium) {
        if let Ok(c) = crate::loader::cilium::CiliumLoader::build(None) {
            libraries.push(crate::loader::Loader::library(&c));
        }
    }
    if !opts.loaders.contains(&LoaderId::Libbpf) {
        libraries.remove(0);
    }
    Ok(Matrix {
        generated_utc: utc_now(),
        libraries,
        loaders: opts.loaders.iter().map(|l| l.to_string()).collect(),
        cases: metas,
        kernels: kernels_out,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_format() {
        let s = super::utc_now();
        assert_eq!(s.len(), 20);
        assert!(s.starts_with("20") && s.ends_with('Z'), "{s}");
    }
}
