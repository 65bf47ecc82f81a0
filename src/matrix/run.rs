//! `probeconf matrix`: fetch kernels, build one image, boot every kernel under
//! QEMU (several at once), and turn each VM's JSON Lines into a column of the
//! matrix. A kernel that is missing, panics, hangs or breaks the guest gets an
//! `error` column with its console tail; the other columns complete.

use crate::case::{discover, LoaderId};
use crate::kernels::{self, KernelImage};
use crate::matrix::{config_flags, CaseMeta, ColumnStatus, Crash, KernelColumn, Matrix};
use crate::matrix::shard::{ColumnSpec, Shard};
use crate::run::CaseResult;
use crate::vm::lines::GuestLine;
use crate::vm::{BootOptions, BootOutcome, BootStatus, GuestMode, GuestOptions, ImageSpec};
use std::path::PathBuf;
use std::time::Duration;

pub struct MatrixOptions {
    /// Kernel requests ("6.12", an exact release, …).
    pub kernels: Vec<String>,
    /// Case files or directories.
    pub cases: Vec<PathBuf>,
    /// The loaders, as asked for (`--loader`); each is opened (built) on the
    /// host and copied into the image.
    pub loaders: Vec<crate::loaders::registry::LoaderRequest>,
    /// Per kernel column.
    pub timeout: Duration,
    /// VMs at once (0 = number of cores).
    pub parallel: usize,
    /// Where the image and each VM's console/results logs are kept.
    pub work_dir: PathBuf,
    pub target_timeout_s: u64,
    /// The static probeconf to use as the guest's /init (default: this binary).
    pub init: Option<PathBuf>,
    /// A boot whose guest sends nothing for this long is killed (a hang).
    pub stall_timeout: Duration,
    pub tcg_threads: crate::vm::TcgThreads,
    /// Attempts per case in the guest.
    pub attempts: crate::run::attempts::AttemptPolicy,
    /// A deliberate crash in every column, for testing recovery (`probeconf.crash=`).
    pub crash: Option<crate::vm::cmdline::CrashPlan>,
    /// Boot each kernel under each of these preemption models (`preempt=`),
    /// one column each; empty = the kernel's default only.
    pub preempt: Vec<crate::case::PreemptMode>,
    /// Run only this share of the columns (CI job matrices).
    pub shard: Option<Shard>,
    /// The QEMU binary.
    pub qemu: PathBuf,
}

impl MatrixOptions {
    /// Options with the defaults for everything but what to run where.
    pub fn new(kernels: Vec<String>, cases: Vec<PathBuf>, loaders: Vec<crate::loaders::registry::LoaderRequest>, work_dir: PathBuf) -> Self {
        MatrixOptions {
            kernels,
            cases,
            loaders,
            timeout: Duration::from_secs(900),
            parallel: 0,
            work_dir,
            target_timeout_s: 60,
            init: None,
            stall_timeout: Duration::from_secs(240),
            tcg_threads: Default::default(),
            attempts: Default::default(),
            crash: None,
            preempt: Vec::new(),
            shard: None,
            qemu: PathBuf::from("qemu-system-x86_64"),
        }
    }
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

fn error_column(spec: &ColumnSpec, cases: Vec<String>, reason: String) -> KernelColumn {
    KernelColumn {
        request: spec.kernel.clone(),
        release: String::new(),
        status: ColumnStatus::Error { reason, console_tail: String::new() },
        features: None,
        config: Default::default(),
        results: Vec::new(),
        wall_secs: 0.0,
        crashes: Vec::new(),
        preempt: spec.preempt,
        cases,
        profile: None,
    }
}

/// Adds one boot to a column's profile: the guest's uptime at its hello,
/// features and done lines splits the boot, the results' timings split the cases.
fn add_profile(p: &mut crate::matrix::ColumnProfile, out: &BootOutcome, results: &[CaseResult]) {
    let wall = out.wall.as_secs_f64();
    let to_user = out.to_userspace.map(|d| d.as_secs_f64()).unwrap_or(wall);
    p.boots += 1;
    let hello = out.lines.iter().find(|l| matches!(l, GuestLine::Hello { .. })).and_then(GuestLine::uptime_s);
    let features = out.lines.iter().find(|l| matches!(l, GuestLine::Features { .. })).and_then(GuestLine::uptime_s);
    let last = out.lines.iter().rev().find_map(GuestLine::uptime_s);
    // Host time to the first line, then guest time between lines.
    p.boot_s += to_user;
    let feat = match (hello, features) {
        (Some(h), Some(f)) => (f - h).max(0.0),
        _ => 0.0,
    };
    let cases = match (features, last) {
        (Some(f), Some(l)) => (l - f).max(0.0),
        _ => 0.0,
    };
    p.features_s += feat;
    p.cases_s += cases;
    p.other_s += (wall - to_user - feat - cases).max(0.0);
    for r in results {
        if let Some(t) = &r.timing {
            p.setup_s += t.setup_ms as f64 / 1e3;
            p.spawn_s += t.spawn_ms as f64 / 1e3;
            p.symbols_s += t.symbols_ms as f64 / 1e3;
            p.attach_s += t.attach_ms as f64 / 1e3;
            p.run_s += t.run_ms as f64 / 1e3;
            p.drain_s += t.drain_ms as f64 / 1e3;
            p.normalise_s += t.normalise_ms as f64 / 1e3;
        }
        if r.attempts.len() > 1 {
            let first = r.timing.as_ref().map(|t| t.setup_ms + t.spawn_ms + t.symbols_ms + t.attach_ms + t.run_ms + t.drain_ms + t.normalise_ms).unwrap_or(0);
            p.attempts_s += r.duration_ms.saturating_sub(first) as f64 / 1e3;
        }
    }
}

/// The longest the guest may rightly be silent: one case with every attempt
/// of every loader running into the target timeout, plus a margin for
/// feature probing and a harness build.
fn worst_case_silence(opts: &MatrixOptions) -> Duration {
    let runs = (opts.attempts.repeat.max(1) + opts.attempts.reruns) * opts.loaders.len().max(1);
    Duration::from_secs(opts.target_timeout_s * runs as u64 + 180)
}

/// What one boot's results channel holds: the probed features (if the guest
/// got that far) and every result it sent.
fn boot_results(out: &BootOutcome) -> (Option<crate::probing::features::FeatureSet>, Vec<CaseResult>) {
    let features = out.lines.iter().find_map(|l| match l {
        GuestLine::Features { features, .. } => Some(features.clone()),
        _ => None,
    });
    (features, out.results().into_iter().cloned().collect())
}

/// The relevant config flags the guest read from its own /proc/config.gz.
fn guest_config(out: &BootOutcome) -> Option<std::collections::BTreeMap<String, String>> {
    out.lines.iter().find_map(|l| match l {
        GuestLine::Features { config: Some(c), .. } => Some(c.clone()),
        _ => None,
    })
}

/// Boots in a row that may crash before reaching their first case; after
/// that the column is an `error` (the kernel cannot run the suite here).
pub const MAX_FAILED_STARTS: usize = 3;
/// Kernel crashes a column may have in all before it gives up.
pub const MAX_CRASHES: usize = 8;

fn column_counts(col: &KernelColumn) -> String {
    let counts = crate::report::counts(&col.results);
    let parts: Vec<String> =
        crate::judge::check::Verdict::ALL.iter().map(|v| format!("{} {v}", counts.get(v).copied().unwrap_or(0))).collect();
    format!("{} runs: {}", col.results.len(), parts.join(", "))
}

/// What one boot got through: the cases it started (index, id), in order.
fn started_cases(out: &BootOutcome) -> Vec<(usize, String)> {
    out.lines
        .iter()
        .filter_map(|l| match l {
            GuestLine::CaseStart { case, index, .. } => Some((*index, case.clone())),
            _ => None,
        })
        .collect()
}

/// Why a boot ended early, when it did (`None`: it completed).
fn crash_reason(out: &BootOutcome) -> Option<String> {
    match &out.status {
        BootStatus::Completed { .. } => None,
        BootStatus::Crashed(line) => Some(format!("kernel crash: {line}")),
        BootStatus::TimedOut => Some(format!("the VM stopped making progress and was killed after {:.0} s", out.wall.as_secs_f64())),
        BootStatus::QemuFailed(e) => Some(format!("qemu failed: {e}")),
        BootStatus::Incomplete(e) => Some(format!("guest did not finish: {e}")),
    }
}

/// One kernel's column. The guest announces each case before it runs it and
/// streams each result, so when the kernel crashes the host knows exactly
/// where. Any crash after the kernel booted — while probing features,
/// between cases, during a case — logs the crash with its console tail and
/// boots the kernel again from where it stopped:
///
/// * a crash before the boot's first case started (boot, feature probing)
///   boots again from the same place; only [`MAX_FAILED_STARTS`] such boots
///   in a row make the column an `error`;
/// * a crash during a case boots again from that case; the same case
///   crashing the kernel a second time gets `error` (the crash is its
///   result) and the column goes on with the next case;
/// * a crash between cases resumes with the next case, blaming none.
///
/// QEMU failing or the guest itself breaking is not a kernel crash: the
/// column is an `error` at once.
fn run_column(job: &ColumnJob, guest: &GuestOptions, loaders: &[(String, LoaderId)], opts: &MatrixOptions) -> KernelColumn {
    let (img, initramfs, case_ids) = (&job.image, job.initramfs.as_path(), job.case_ids.as_slice());
    let mut col = KernelColumn {
        preempt: job.spec.preempt,
        cases: if job.partial { job.case_ids.clone() } else { Vec::new() },
        profile: Some(Default::default()),
        request: img.request.clone(),
        release: img.release.clone(),
        status: ColumnStatus::Completed,
        features: None,
        config: img.config.as_ref().and_then(|p| std::fs::read_to_string(p).ok()).map(|t| config_flags(&t)).unwrap_or_default(),
        results: Vec::new(),
        wall_secs: 0.0,
        crashes: Vec::new(),
    };
    let config_from_package = !col.config.is_empty();
    if !config_from_package {
        // No config package in the archive for this release: say so per flag
        // (unless the kernel shows its own, see below).
        col.config = crate::matrix::CONFIG_FLAGS.iter().map(|f| (f.to_string(), "?".to_string())).collect();
    }
    let mut name = if img.release.is_empty() { img.request.clone() } else { img.release.clone() };
    if let Some(p) = job.spec.preempt {
        name = format!("{name}-preempt-{p}");
    }
    if job.partial {
        name = format!("{name}-slice-{}", job.slice);
    }
    let mut skip = 0usize;
    let mut failed_starts = 0usize;
    for boot_no in 0.. {
        let mut g = guest.clone();
        g.skip = skip;
        g.boot = boot_no;
        let mut b = BootOptions::new(&img.vmlinuz, initramfs);
        b.memory = crate::vm::image::memory_for(std::fs::metadata(initramfs).map(|m| m.len()).unwrap_or(0));
        b.kernel_cmdline_extra = g.to_kernel_args();
        if let Some(p) = job.spec.preempt {
            b.kernel_cmdline_extra = format!("preempt={p} {}", b.kernel_cmdline_extra);
        }
        b.timeout = opts.timeout;
        b.stall_timeout = Some(opts.stall_timeout.max(worst_case_silence(opts)));
        b.tcg_threads = opts.tcg_threads;
        b.qemu = opts.qemu.clone();
        b.work_dir = Some(opts.work_dir.join(format!("vm-{name}-{boot_no}")));
        let out = crate::vm::boot(&b);
        col.wall_secs += out.wall.as_secs_f64();
        let (features, results) = boot_results(&out);
        if let Some(p) = col.profile.as_mut() {
            add_profile(p, &out, &results);
        }
        if let Some(h) = out.hello_kernel() {
            col.release = h.to_string();
        }
        // No config package in the archive: the kernel's own, if it has one.
        if !config_from_package {
            if let Some(c) = guest_config(&out) {
                col.config = crate::matrix::CONFIG_FLAGS.iter().map(|f| (f.to_string(), c.get(*f).cloned().unwrap_or_else(|| "n".into()))).collect();
            }
        }
        let probed = features.is_some();
        if col.features.is_none() {
            col.features = features;
        }
        col.results.extend(results);
        let Some(reason) = crash_reason(&out) else {
            col.status = ColumnStatus::Completed;
            break;
        };
        if matches!(out.status, BootStatus::QemuFailed(_) | BootStatus::Incomplete(_)) {
            col.status = ColumnStatus::Error { reason, console_tail: out.console_tail.clone() };
            break;
        }
        let started = started_cases(&out);
        let Some((at, culprit)) = started.last().cloned() else {
            // Before the first case of this boot: booting, or probing features.
            let stage = if out.hello().is_none() {
                "(boot, before the guest started)"
            } else if !probed {
                "(feature probing)"
            } else {
                "(before the first case)"
            };
            col.crashes.push(Crash { case: stage.into(), reason: reason.clone(), console_tail: out.console_tail.clone() });
            failed_starts += 1;
            if failed_starts >= MAX_FAILED_STARTS {
                col.status = ColumnStatus::Error {
                    reason: format!("the kernel crashed {failed_starts} times in a row before the first case ({reason})"),
                    console_tail: out.console_tail.clone(),
                };
                break;
            }
            continue;
        };
        failed_starts = 0;
        let finished = loaders.iter().all(|(l, _)| col.results.iter().any(|r| r.case == culprit && r.loader == *l));
        if finished {
            // Between cases: the next one had not started.
            let next = case_ids.get(at + 1).map(|c| format!(" and `{c}`")).unwrap_or_default();
            col.crashes.push(Crash { case: format!("(between `{culprit}`{next})"), reason, console_tail: out.console_tail.clone() });
            skip = at + 1;
        } else {
            let crashed_before = col.crashes.iter().any(|c| c.case == culprit);
            col.crashes.push(Crash { case: culprit.clone(), reason: reason.clone(), console_tail: out.console_tail.clone() });
            // Runs of the culprit that finished before the crash are dropped:
            // the case runs again whole, or becomes the crash's error.
            col.results.retain(|r| r.case != culprit);
            if crashed_before {
                for l in loaders {
                    col.results.push(crash_result(&culprit, l, &col.release, &reason));
                }
                skip = at + 1;
            } else {
                skip = at;
            }
        }
        if skip >= case_ids.len() {
            col.status = ColumnStatus::Completed;
            break;
        }
        if col.crashes.len() >= MAX_CRASHES {
            col.status = ColumnStatus::Error {
                reason: format!("{} kernel crashes; gave up", col.crashes.len()),
                console_tail: out.console_tail.clone(),
            };
            break;
        }
    }
    col
}

fn crash_result(case: &str, loader: &(String, LoaderId), kernel: &str, reason: &str) -> CaseResult {
    let detail = format!("the kernel crashed twice while this case ran (last: {reason}); see the column's crash log");
    CaseResult::new(case, &loader.0, loader.1, kernel, crate::judge::check::Verdict::Error, detail)
}

/// One column to run: its kernel, its image and the cases in it.
struct ColumnJob {
    spec: ColumnSpec,
    image: KernelImage,
    initramfs: PathBuf,
    /// The ids of the cases in the image, in the order the guest runs them.
    case_ids: Vec<String>,
    /// A share of the cases (a shard's slice), not all of them.
    partial: bool,
    slice: usize,
}

/// The first line of `qemu --version`.
fn qemu_version(qemu: &std::path::Path) -> String {
    duct::cmd(qemu, ["--version"])
        .stdout_capture()
        .stderr_null()
        .unchecked()
        .read()
        .ok()
        .and_then(|o| o.lines().next().map(str::to_string))
        .unwrap_or_else(|| format!("{}: version unknown", qemu.display()))
}

/// Runs the matrix: every column of the plan, or the shard's share.
/// `progress` gets one line per event (fetch, image, column done).
pub fn run(opts: &MatrixOptions, mut progress: impl FnMut(String)) -> Result<Matrix, String> {
    std::fs::create_dir_all(&opts.work_dir).map_err(|e| format!("{}: {e}", opts.work_dir.display()))?;
    // Cases, for the row list (the guest reads the same files).
    let files = discover(&opts.cases).map_err(|e| e.to_string())?;
    let (cases, errors) = crate::case::load_set(&files);
    if !errors.is_empty() {
        return Err(errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"));
    }
    let metas: Vec<CaseMeta> = cases
        .iter()
        .map(|c| CaseMeta {
            id: c.id.clone(),
            group: c.probes.first().map(|p| p.kind.section().to_string()).unwrap_or_default(),
            description: c.description.clone(),
            has_known: !c.known.is_empty(),
            kinds: c.probes.iter().map(|p| p.kind.section().to_string()).collect(),
            expects_trace: matches!(c.expect.default, crate::case::Outcome::Trace(_)),
        })
        .collect();

    let plan = crate::matrix::shard::columns(&opts.kernels, &opts.preempt);
    let units = crate::matrix::shard::units(plan.len(), opts.shard);
    if let Some(s) = opts.shard {
        let mine: Vec<String> = units.iter().map(|u| format!("{}{}", plan[u.column].label(), if u.slices > 1 { format!(" (cases slice {}/{})", u.slice + 1, u.slices) } else { String::new() })).collect();
        progress(format!("shard {s}: {}", if mine.is_empty() { "nothing to do".to_string() } else { mine.join(", ") }));
    }

    // Kernels of this share: a missing one becomes an error column, not the end of the run.
    let mut requests: Vec<String> = Vec::new();
    for u in &units {
        if !requests.contains(&plan[u.column].kernel) {
            requests.push(plan[u.column].kernel.clone());
        }
    }
    let mut resolved: std::collections::HashMap<String, Result<KernelImage, String>> = std::collections::HashMap::new();
    for (r, img) in requests.iter().zip(kernels::source::resolve_requests(&requests)) {
        resolved.insert(r.clone(), img.map_err(|e| e.to_string()));
    }
    for r in &requests {
        match &resolved[r] {
            Ok(img) => progress(format!("{r}: {} ({})", img.release, img.vmlinuz.display())),
            Err(e) => progress(format!("{r}: {e}")),
        }
    }

    // The loaders, opened (built) here: their specs go into the image, their
    // libraries into the header.
    let mut opened = Vec::new();
    for r in &opts.loaders {
        let l = crate::loaders::registry::open(r).map_err(|e| format!("loader {}: {e}", r.label()))?;
        progress(format!("loader {}: {} {}", l.label(), l.library().library, l.library().version));
        opened.push(l);
    }
    let specs: Vec<crate::loaders::registry::LoaderSpec> = opened
        .iter()
        .map(|l| l.respawn().ok_or_else(|| format!("loader {} cannot run in a VM (no spec)", l.label())))
        .collect::<Result<_, _>>()?;
    let libraries: Vec<crate::loaders::LibraryInfo> = opened.iter().map(|l| l.library()).collect();
    let loader_labels: Vec<String> = opened.iter().map(|l| l.label()).collect();
    let loader_ids: Vec<(String, LoaderId)> = opened.iter().map(|l| (l.label(), l.id())).collect();

    // One image per distinct set of cases (all of them, or a shard's slice).
    let mut images: std::collections::BTreeMap<(usize, usize), PathBuf> = std::collections::BTreeMap::new();
    let mut jobs: Vec<(usize, ColumnJob)> = Vec::new();
    let mut out_columns: Vec<(usize, KernelColumn)> = Vec::new();
    for (n, u) in units.iter().enumerate() {
        let in_unit: Vec<usize> = (0..cases.len()).filter(|i| u.has_case(*i)).collect();
        let case_ids: Vec<String> = in_unit.iter().map(|i| cases[*i].id.clone()).collect();
        let spec = plan[u.column].clone();
        let partial = u.slices > 1;
        let img = match &resolved[&spec.kernel] {
            Ok(img) => img.clone(),
            Err(e) => {
                out_columns.push((n, error_column(&spec, if partial { case_ids } else { Vec::new() }, format!("kernel not available: {e}"))));
                continue;
            }
        };
        let key = (u.slice, u.slices);
        if !images.contains_key(&key) {
            let path = if partial { opts.work_dir.join(format!("initramfs-slice-{}-of-{}.cpio", u.slice + 1, u.slices)) } else { opts.work_dir.join("initramfs.cpio") };
            let slice_files: Vec<PathBuf> = in_unit.iter().map(|i| cases[*i].path.clone()).collect();
            let size = crate::vm::image::write(&ImageSpec { init: opts.init.clone(), loaders: specs.clone(), cases: slice_files }, &path)?;
            progress(format!(
                "image: {} ({:.1} MB, {} cases; guest memory {})",
                path.display(),
                size as f64 / 1e6,
                in_unit.len(),
                crate::vm::image::memory_for(size)
            ));
            images.insert(key, path);
        }
        jobs.push((n, ColumnJob { spec, image: img, initramfs: images[&key].clone(), case_ids, partial, slice: u.slice }));
    }

    let guest = GuestOptions {
        mode: GuestMode::Run,
        target_timeout_s: opts.target_timeout_s,
        attempts: opts.attempts,
        crash: opts.crash.clone(),
        ..GuestOptions::default()
    };

    // Columns run in the one worker pool, one VM per core; a column may boot
    // its kernel several times (see run_column).
    let total = jobs.len();
    let labels: Vec<String> = jobs.iter().map(|(_, j)| j.spec.label()).collect();
    let order: Vec<usize> = jobs.iter().map(|(n, _)| *n).collect();
    let mut done = 0;
    let columns = crate::vm::run_pool(
        jobs.into_iter().map(|(_, j)| j).collect(),
        opts.parallel,
        |job| run_column(&job, &guest, &loader_ids, opts),
        |i, col| {
            done += 1;
            let crashes = if col.crashes.is_empty() { String::new() } else { format!(", {} kernel crash(es), resumed", col.crashes.len()) };
            let status = match &col.status {
                ColumnStatus::Completed => column_counts(col),
                ColumnStatus::Error { reason, .. } => format!("error: {reason}"),
            };
            progress(format!("[{done}/{total}] {}: {:.0} s — {status}{crashes}", labels[i], col.wall_secs));
        },
    );
    out_columns.extend(order.into_iter().zip(columns));
    out_columns.sort_by_key(|(n, _)| *n);

    Ok(Matrix {
        generated_utc: utc_now(),
        libraries,
        loaders: loader_labels,
        cases: metas,
        kernels: out_columns.into_iter().map(|(_, c)| c).collect(),
        settings: crate::matrix::RunSettings {
            qemu: qemu_version(&opts.qemu),
            accel: format!("tcg,thread={}", opts.tcg_threads.as_str()),
            attempts: opts.attempts,
        },
        shard: opts.shard.map(|shard| crate::matrix::ShardInfo { shard, columns: plan.clone() }),
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
