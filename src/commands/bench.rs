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
    /// functions in this Debian kernel, booted under QEMU.
    #[arg(long)]
    kernel: Option<String>,
}

pub fn bench(a: BenchArgs) -> Result<ExitCode, String> {
    need_root()?;
    if let Some(k) = &a.kernel {
        return kernel_attach(k, &a.loaders);
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

/// kprobe.multi attach-time scaling inside a VM (the host has no kprobes).
fn kernel_attach(request: &str, loaders: &LoaderArgs) -> Result<ExitCode, String> {
    let img = probeconf::kernels::fetch(&[request.to_string()]).into_iter().next().expect("one result").map_err(|e| e.to_string())?;
    let specs = loaders
        .open()?
        .iter()
        .map(|l| l.respawn().ok_or_else(|| format!("loader {} cannot run in a VM", l.label())))
        .collect::<Result<Vec<_>, _>>()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let initramfs = dir.path().join("initramfs.cpio");
    probeconf::vm::image::write(&probeconf::vm::ImageSpec { init: None, loaders: specs, cases: vec![] }, &initramfs)?;
    let guest = probeconf::vm::GuestOptions { mode: probeconf::vm::GuestMode::BenchAttach, ..Default::default() };
    let mut b = probeconf::vm::BootOptions::new(&img.vmlinuz, &initramfs);
    b.kernel_cmdline_extra = guest.to_kernel_args();
    b.timeout = std::time::Duration::from_secs(900);
    eprintln!("booting {} (TCG) for kprobe.multi attach-time scaling…", img.release);
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
    if timings.is_empty() {
        return Err(format!("the guest reported no timings ({:?}); console:\n{}", out.status, out.console_tail));
    }
    println!("kernel {} (QEMU TCG), kprobe.multi vs single kprobes on PCI/ACPI functions", img.release);
    print!("{}", probeconf::bench::attach_table(&timings));
    Ok(ExitCode::SUCCESS)
}
