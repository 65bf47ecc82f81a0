//! `probeconf bench`: the cost of a probe hit per kind and loader, and
//! attach/detach scaling (on the host, or inside a kernel under QEMU).

use super::{need_root, Format, LoaderArgs};
use probeconf::loaders::Loader;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// A short run (under 30 s): fewer calls and samples.
    #[arg(long)]
    quick: bool,
    #[command(flatten)]
    loaders: LoaderArgs,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Also write an SVG bar chart here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Also measure attach time for 1, 10, 100, 1000 functions (multi vs single links).
    #[arg(long)]
    attach: bool,
    /// With --attach: measure kprobe.multi vs single kprobes on kernel
    /// functions in this Debian kernel, booted under QEMU. With --tracing:
    /// the tracing kinds there.
    #[arg(long)]
    kernel: Option<String>,
    /// With --kernel: the per-hit cost of fentry, fexit, fsession and the
    /// tracing multi link against kprobe, kretprobe and kprobe.session on one
    /// syscall function, and the attach time of one fentry.multi link against
    /// N fentry links.
    #[arg(long, requires = "kernel")]
    tracing: bool,
}

pub fn bench(a: BenchArgs) -> Result<ExitCode, String> {
    need_root()?;
    if let Some(k) = &a.kernel {
        return kernel_bench(k, &a.loaders, if a.tracing { probeconf::vm::GuestMode::BenchTracing } else { probeconf::vm::GuestMode::BenchAttach }, a.format);
    }
    probeconf::interrupt::install();
    let loaders = a.loaders.open()?;
    let refs: Vec<&dyn Loader> = loaders.iter().map(|l| l.as_ref()).collect();
    let opts = if a.quick { probeconf::bench::BenchOptions::quick() } else { probeconf::bench::BenchOptions::full() };
    let report = probeconf::bench::run(&refs, &opts, |m| {
        eprintln!("  {:<20} {:<8} {}", m.scenario, m.loader, m.error.clone().unwrap_or_else(|| format!("{:.1} ns/call", m.ns_per_call)))
    });
    if let Some(p) = &a.svg {
        std::fs::write(p, report.svg()).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    let scaling = if a.attach {
        let counts: &[usize] = if a.quick { &[1, 10, 100] } else { &[1, 10, 100, 1000] };
        probeconf::bench::attach_scaling(&refs, counts, if a.quick { 1 } else { 3 })
    } else {
        Vec::new()
    };
    match a.format {
        Format::Json => println!("{}", serde_json::json!({"hits": report, "attach": scaling})),
        _ => {
            print!("{}", report.table());
            if a.attach {
                print!("\n{}", probeconf::bench::attach_table(&scaling));
            }
        }
    }
    Ok(if report.measurements.iter().any(|m| m.error.is_some()) { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Benchmarks inside a VM (the host has no kprobes, and no fentry): kprobe.multi
/// attach-time scaling, or the tracing family.
fn kernel_bench(request: &str, loaders: &LoaderArgs, mode: probeconf::vm::GuestMode, format: Format) -> Result<ExitCode, String> {
    let img = probeconf::kernels::fetch(&[request.to_string()]).into_iter().next().expect("one result").map_err(|e| e.to_string())?;
    let specs = loaders
        .open()?
        .iter()
        .map(|l| l.respawn().ok_or_else(|| format!("loader {} cannot run in a VM", l.label())))
        .collect::<Result<Vec<_>, _>>()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let initramfs = dir.path().join("initramfs.cpio");
    probeconf::vm::image::write(&probeconf::vm::ImageSpec { init: None, loaders: specs, cases: vec![] }, &initramfs)?;
    let guest = probeconf::vm::GuestOptions { mode, ..Default::default() };
    let mut b = probeconf::vm::BootOptions::new(&img.vmlinuz, &initramfs);
    b.kernel_cmdline_extra = guest.to_kernel_args();
    b.timeout = std::time::Duration::from_secs(900);
    if mode == probeconf::vm::GuestMode::BenchTracing {
        // Per-hit costs in instructions (1 ns of guest time per guest
        // instruction): TCG's wall time is too noisy to compare probes.
        b.icount_shift = Some(0);
    }
    eprintln!("booting {} (TCG) for {}…", img.release, mode.as_str());
    let (out, boot_crashes) = probeconf::vm::boot_retrying(&b, 3);
    if !boot_crashes.is_empty() {
        eprintln!("the kernel crashed while booting {} time(s); booted again", boot_crashes.len());
    }
    let timings: Vec<probeconf::bench::AttachTiming> = out
        .lines
        .iter()
        .filter_map(|l| match l {
            probeconf::vm::lines::GuestLine::AttachTiming { timing } => Some(timing.clone()),
            _ => None,
        })
        .collect();
    let hits: Vec<probeconf::bench::Measurement> = out
        .lines
        .iter()
        .filter_map(|l| match l {
            probeconf::vm::lines::GuestLine::Hit { measurement } => Some(measurement.clone()),
            _ => None,
        })
        .collect();
    if timings.is_empty() && hits.is_empty() {
        return Err(format!("the guest reported no timings ({:?}); console:\n{}", out.status, out.console_tail));
    }
    let machine = probeconf::bench::machine_name();
    if matches!(format, Format::Json) {
        println!("{}", serde_json::json!({"kernel": img.release, "host": machine, "accel": "tcg", "hits": hits, "attach": timings}));
        return Ok(ExitCode::SUCCESS);
    }
    if mode == probeconf::vm::GuestMode::BenchTracing {
        println!("kernel {} (QEMU TCG -icount shift=0, host {machine}): per hit on __x64_sys_getpgid, {}", img.release, probeconf::bench::BenchOptions::full().describe());
        println!(
            "The guest's clock counts instructions (1 ns = 1 guest instruction), the same in every run: a cost model, not time.\n\
             It leaves out what instructions do not show (an int3 trap's exception entry costs far more on hardware than\n\
             its instructions): compare the ratios, all from this one run.\n"
        );
        print!("{}", probeconf::bench::kernel_hits_table(&hits, "instr"));
        println!("\nkernel {}: one fentry.multi link on N PCI/ACPI functions vs N fentry links (load + attach, detach)", img.release);
    } else {
        println!("kernel {} (QEMU TCG), kprobe.multi vs single kprobes on PCI/ACPI functions", img.release);
    }
    print!("{}", probeconf::bench::attach_table(&timings));
    Ok(if hits.iter().any(|m| m.error.is_some()) || timings.iter().any(|t| t.error.is_some()) { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
