//! Runs cases through probeconf's in-process libbpf loader and through libbpf
//! harness binaries (driven over go-harness/PROTOCOL.md by the runner's own
//! protocol client, which speaks to any harness) and compares the normalised
//! traces and the vias. A check for libbpf-harness/ while it is not wired in:
//!
//!     cargo run --release --example compare_libbpf_harness -- \
//!         --harness ~/.cache/probeconf/libbpf-harness/1.5/probeconf-libbpf-harness \
//!         cases/uprobe-session/uprobe-session-cookie-roundtrip.yaml
//!
//! Exit status 1 when a trace differs (vias may differ: a bridge is reported).
use probeconf::case::Case;
use probeconf::loaders::cilium::CiliumLoader;
use probeconf::loaders::libbpf::LibbpfLoader;
use probeconf::run::{execute, RunOptions};

fn main() {
    let mut harnesses = Vec::new();
    let mut cases = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--harness" {
            harnesses.push(std::path::PathBuf::from(args.next().expect("--harness PATH")));
        } else {
            cases.push(std::path::PathBuf::from(a));
        }
    }
    let opts = RunOptions::default();
    let mut differ = false;
    for path in &cases {
        let case = Case::load(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let here = execute(&case, &LibbpfLoader, &opts).unwrap_or_else(|e| panic!("in-process: {}", e.0));
        let want = here.observed.normalised();
        println!("== {} in-process libbpf ({}):\n{want}", case.id, serde_json::to_string(&here.vias).unwrap());
        for h in &harnesses {
            let loader = CiliumLoader::new(h.clone()).unwrap_or_else(|e| panic!("{}: {e}", h.display()));
            let there = execute(&case, &loader, &opts).unwrap_or_else(|e| panic!("{}: {}", h.display(), e.0));
            let got = there.observed.normalised();
            let same = got == want;
            differ |= !same;
            println!(
                "-- {} libbpf {}: {} vias {}",
                case.id,
                loader.version(),
                if same { "same trace" } else { "DIFFERENT trace" },
                serde_json::to_string(&there.vias).unwrap()
            );
            if !same {
                println!("{got}");
            }
        }
    }
    std::process::exit(differ as i32);
}
