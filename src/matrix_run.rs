//! `probeconf matrix`: fetch kernels, build one image, boot every kernel under
//! QEMU (several at once), and turn each VM's JSON Lines into a column of the
//! matrix. A kernel that is missing, panics, hangs or breaks the guest gets an
//! `error` column with its console tail; the other columns complete.

use crate::case::{discover, Case, LoaderId};
use crate::kernels::{self, KernelImage};
use crate::matrix::{config_flags, CaseMeta, ColumnStatus, KernelColumn, Matrix};
use crate::runner::CaseResult;
use crate::vm::{BootOptions, BootOutcome, BootStatus, GuestMode, GuestOptions, ImageSpec};
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
    /// The static probeconf to use as the guest's /init (default: this binary).
    pub init: Option<PathBuf>,
}

/// A request that names a kernel image file (contains `/`): a developer's own
/// build, or a deliberately broken image in tests. The config is taken from a
/// `config` or `.config` file beside it, if any.
fn image_from_path(request: &str) -> Result<KernelImage, String> {
    let p = PathBuf::from(request);
    if !p.is_file() {
        return Err(format!("{request}: no such kernel image file"));
    }
    let dir = p.parent().map(PathBuf::from).unwrap_or_default();
    let config = ["config", ".config"].iter().map(|n| dir.join(n)).find(|c| c.is_file());
    Ok(KernelImage {
        request: p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| request.into()),
        release: String::new(),
        package: "(local file)".into(),
        package_version: String::new(),
        suite: String::new(),
        vmlinuz: p.clone(),
        config,
        config_package: None,
        dir,
    })
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
        crashes: Vec::new(),
    }
}

/// One VM's lines → its column.
fn column_from(img: &KernelImage, out: &BootOutcome) -> KernelColumn {
    let wall = out.wall.as_secs_f64();
    let config = img.config.as_ref().and_then(|p| std::fs::read_to_string(p).ok()).map(|t| config_flags(&t)).unwrap_or_default();
    let release = out.hello().and_then(|h| h["kernel"].as_str()).unwrap_or(&img.release).to_string();
    let status = match &out.status {
        BootStatus::Completed { .. } => ColumnStatus::Completed,
        BootStatus::Crashed(line) => ColumnStatus::Error { reason: format!("kernel crash: {line}"), console_tail: out.console_tail.clone() },
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
    let mut col = KernelColumn { request: img.request.clone(), release, status, features, config, results, wall_secs: wall, crashes: Vec::new() };
    if col.config.is_empty() {
        // No config package in the archive for this release: say so per flag.
        col.config = crate::matrix::CONFIG_FLAGS.iter().map(|f| (f.to_string(), "?".to_string())).collect();
    }
    col
}

/// How many boots a column may take: the first, plus a resume per kernel crash.
const MAX_BOOTS: usize = 5;

fn column_counts(col: &KernelColumn) -> String {
    let n = |v: crate::check::Verdict| col.results.iter().filter(|r| r.verdict == v).count();
    use crate::check::Verdict::*;
    format!("{} runs: {} pass, {} fail, {} unsupported, {} error", col.results.len(), n(Pass), n(Fail), n(Unsupported), n(Error))
}

/// One kernel's column. The guest runs cases in order and streams each
/// result, so when the kernel crashes (panic, a guest that stops talking) the
/// host knows the case that was running. It logs the crash with the console
/// tail and boots the kernel again from that case; a case that crashes the
/// kernel a second time gets `error` and the column goes on after it.
fn run_column(
    img: &KernelImage,
    initramfs: &std::path::Path,
    guest: &GuestOptions,
    case_ids: &[String],
    loaders: &[String],
    opts: &MatrixOptions,
) -> KernelColumn {
    let mut column: Option<KernelColumn> = None;
    let mut skip = 0usize;
    for boot_no in 0..MAX_BOOTS {
        let mut g = guest.clone();
        g.skip = skip;
        let mut b = BootOptions::new(&img.vmlinuz, initramfs);
        b.kernel_cmdline_extra = g.to_kernel_args();
        b.timeout = opts.timeout;
        b.work_dir = Some(opts.work_dir.join(format!("vm-{}-{}", if img.release.is_empty() { &img.request } else { &img.release }, boot_no)));
        let (out, boot_crashes) = crate::vm::boot_retrying(&b, 3);
        let part = column_from(img, &out);
        let crashed = !matches!(out.status, BootStatus::Completed { .. });
        let progressed = !part.results.is_empty() || part.features.is_some();
        let col = column.get_or_insert_with(|| KernelColumn { results: Vec::new(), crashes: Vec::new(), wall_secs: 0.0, ..part.clone() });
        for c in &boot_crashes {
            col.wall_secs += c.wall.as_secs_f64();
            col.crashes.push(crate::matrix::Crash {
                case: "(boot, before any case)".into(),
                reason: "kernel panic".into(),
                console_tail: c.console_tail.clone(),
            });
        }
        col.wall_secs += part.wall_secs;
        if col.features.is_none() {
            col.features = part.features.clone();
        }
        col.results.extend(part.results.iter().cloned());
        if !crashed {
            col.status = ColumnStatus::Completed;
            break;
        }
        // Which case was running: the first whose runs are not all in.
        let finished = |id: &str| loaders.iter().all(|l| col.results.iter().any(|r| r.case == id && r.loader == *l));
        let running = case_ids.iter().skip(skip).position(|id| !finished(id)).map(|p| p + skip);
        let (ColumnStatus::Error { reason, console_tail }, Some(at), true) = (&part.status, running, progressed) else {
            // Crashed before any case ran, or after the last: the column is an error.
            col.status = part.status.clone();
            break;
        };
        let culprit = case_ids[at].clone();
        let crashed_before = col.crashes.iter().any(|c| c.case == culprit);
        col.crashes.push(crate::matrix::Crash { case: culprit.clone(), reason: reason.clone(), console_tail: console_tail.clone() });
        // Runs of the culprit that finished before the crash are kept; the
        // retry reruns the whole case, so drop them to avoid duplicates.
        col.results.retain(|r| r.case != culprit);
        if crashed_before {
            // The same case crashed the kernel twice: its runs are errors.
            for l in loaders {
                col.results.push(crash_result(&culprit, l, &col.release, reason));
            }
            skip = at + 1;
        } else {
            // One crash: boot again from this case (the crash stays in the log).
            skip = at;
        }
        col.status = ColumnStatus::Completed;
        if skip >= case_ids.len() {
            break;
        }
        if boot_no + 1 == MAX_BOOTS {
            col.status = ColumnStatus::Error { reason: format!("{} kernel crashes; gave up", col.crashes.len()), console_tail: console_tail.clone() };
        }
    }
    column.expect("at least one boot")
}

fn crash_result(case: &str, loader: &str, kernel: &str, reason: &str) -> CaseResult {
    CaseResult {
        case: case.into(),
        loader: loader.into(),
        loader_id: if loader.starts_with("cilium") { LoaderId::Cilium } else { LoaderId::Libbpf },
        kernel: kernel.into(),
        verdict: crate::check::Verdict::Error,
        detail: format!("the kernel crashed ({reason}) while this case ran; see the column's crash log"),
        via: crate::loader::ViaKind::Native,
        vias: Vec::new(),
        library: String::new(),
        observed: None,
        expected: None,
        diff: None,
        duration_ms: 0,
    }
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
    let (files_req, debian_req): (Vec<String>, Vec<String>) = opts.kernels.iter().cloned().partition(|k| k.contains('/'));
    let mut fetched = files_req
        .iter()
        .map(|r| image_from_path(r))
        .chain(kernels::fetch(&debian_req).into_iter().map(|r| r.map_err(|e| e.to_string())));
    let ordered: Vec<String> = files_req.iter().chain(debian_req.iter()).cloned().collect();
    let mut by_request: std::collections::HashMap<String, Result<KernelImage, String>> = std::collections::HashMap::new();
    for req in &ordered {
        by_request.insert(req.clone(), fetched.next().expect("one result per request"));
    }
    for req in &opts.kernels {
        let r = by_request.remove(req).expect("every request resolved");
        match &r {
            Ok(img) => progress(format!("{req}: {} ({})", img.release, img.vmlinuz.display())),
            Err(e) => progress(format!("{req}: {e}")),
        }
        images.push((req.clone(), r));
    }

    let initramfs = opts.work_dir.join("initramfs.cpio");
    let size = crate::vm::image::write(&ImageSpec { init: opts.init.clone(), harness: None, cases: files.clone() }, &initramfs)?;
    progress(format!("image: {} ({:.1} MB, {} cases)", initramfs.display(), size as f64 / 1e6, cases.len()));

    let guest = GuestOptions {
        mode: GuestMode::Run,
        loaders: opts.loaders.clone(),
        target_timeout_s: opts.target_timeout_s,
        ..GuestOptions::default()
    };
    let case_ids: Vec<String> = cases.iter().map(|c| c.id.clone()).collect();
    let loader_labels: Vec<String> = opts.loaders.iter().map(|l| l.to_string()).collect();

    // Columns run in parallel (up to `parallel`), each in its own thread; a
    // column may boot its kernel several times (see run_column).
    let parallel = if opts.parallel == 0 { crate::vm::default_parallelism() } else { opts.parallel }.max(1);
    let jobs: Vec<(usize, KernelImage)> =
        images.iter().enumerate().filter_map(|(i, (_, img))| img.as_ref().ok().map(|k| (i, k.clone()))).collect();
    let total = jobs.len();
    let queue = std::sync::Mutex::new(jobs.into_iter());
    let (tx, rx) = std::sync::mpsc::channel::<(usize, KernelColumn)>();
    let mut columns: std::collections::HashMap<usize, KernelColumn> = std::collections::HashMap::new();
    std::thread::scope(|scope| {
        for _ in 0..parallel.min(total.max(1)) {
            let tx = tx.clone();
            let queue = &queue;
            let (guest, case_ids, loader_labels, initramfs) = (&guest, &case_ids, &loader_labels, &initramfs);
            scope.spawn(move || loop {
                let next = queue.lock().unwrap().next();
                let Some((i, img)) = next else { break };
                let col = run_column(&img, initramfs, guest, case_ids, loader_labels, opts);
                if tx.send((i, col)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut done = 0;
        for (i, col) in rx {
            done += 1;
            let counts = column_counts(&col);
            let crashes = if col.crashes.is_empty() { String::new() } else { format!(", {} kernel crash(es), resumed", col.crashes.len()) };
            let status = match &col.status {
                ColumnStatus::Completed => counts,
                ColumnStatus::Error { reason, .. } => format!("error: {reason}"),
            };
            progress(format!("[{done}/{total}] {}: {:.0} s — {status}{crashes}", images[i].0, col.wall_secs));
            columns.insert(i, col);
        }
    });

    let mut kernels_out = Vec::new();
    for (i, (req, img)) in images.iter().enumerate() {
        match img {
            Ok(_) => kernels_out.push(columns.remove(&i).expect("every job reports")),
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
