//! The running kernel's configuration from `/proc/config.gz` (CONFIG_IKCONFIG_PROC),
//! for the guest's `features` line. Debian kernels do not set it; the host
//! keeps their config file beside the vmlinuz instead.
//!
//! gzip is decoded with the zlib that libbpf-sys links into this binary (its
//! `vendored` feature builds zlib for libelf), so no crate is added for it.

use std::collections::BTreeMap;
use std::os::raw::{c_char, c_int, c_uint, c_ulong, c_void};

/// zlib's `z_stream` (zlib.h), as laid out on LP64.
#[repr(C)]
struct ZStream {
    next_in: *const u8,
    avail_in: c_uint,
    total_in: c_ulong,
    next_out: *mut u8,
    avail_out: c_uint,
    total_out: c_ulong,
    msg: *const c_char,
    state: *mut c_void,
    zalloc: *const c_void,
    zfree: *const c_void,
    opaque: *mut c_void,
    data_type: c_int,
    adler: c_ulong,
    reserved: c_ulong,
}

extern "C" {
    fn inflateInit2_(strm: *mut ZStream, window_bits: c_int, version: *const c_char, stream_size: c_int) -> c_int;
    fn inflate(strm: *mut ZStream, flush: c_int) -> c_int;
    fn inflateEnd(strm: *mut ZStream) -> c_int;
}

const Z_OK: c_int = 0;
const Z_STREAM_END: c_int = 1;
const Z_NO_FLUSH: c_int = 0;
/// 15-bit window, +16: expect a gzip header.
const GZIP_WINDOW: c_int = 15 + 16;

/// Decompresses a gzip stream.
pub fn gunzip(data: &[u8]) -> Result<Vec<u8>, String> {
    // SAFETY: z_stream is plain data; zeroed next/avail and null zalloc/zfree
    // are what inflateInit2 expects (default allocator).
    let mut s: ZStream = unsafe { std::mem::zeroed() };
    s.next_in = data.as_ptr();
    s.avail_in = c_uint::try_from(data.len()).map_err(|_| "input too large")?;
    // zlib only compares the major version digit.
    // SAFETY: s is a valid, zeroed z_stream; the version string is NUL-terminated.
    let rc = unsafe { inflateInit2_(&mut s, GZIP_WINDOW, c"1.2.13".as_ptr(), std::mem::size_of::<ZStream>() as c_int) };
    if rc != Z_OK {
        return Err(format!("inflateInit2: {rc}"));
    }
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let result = loop {
        s.next_out = chunk.as_mut_ptr();
        s.avail_out = chunk.len() as c_uint;
        // SAFETY: s was initialised by inflateInit2; next_in points into `data`
        // and next_out into `chunk`, both alive for the call, with their sizes.
        let rc = unsafe { inflate(&mut s, Z_NO_FLUSH) };
        let produced = chunk.len() - s.avail_out as usize;
        out.extend_from_slice(&chunk[..produced]);
        match rc {
            Z_STREAM_END => break Ok(out),
            Z_OK => continue,
            e => break Err(format!("inflate: {e} (corrupt or truncated gzip)")),
        }
    };
    // SAFETY: s was initialised by inflateInit2 and is not used afterwards.
    unsafe { inflateEnd(&mut s) };
    result
}

/// `CONFIG_X=value` lines as a map (`# CONFIG_X is not set` lines are left out).
pub fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| l.starts_with("CONFIG_"))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// The options that bear on the probes this suite tests: the whole config
/// has thousands of entries and goes through an emulated UART.
pub fn relevant(all: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    const WORDS: &[&str] =
        &["BPF", "KPROBE", "UPROBE", "FPROBE", "FTRACE", "FUNCTION_TRACER", "DEBUG_INFO_BTF", "PERF_EVENTS", "TRACING", "RETHOOK"];
    all.iter().filter(|(k, _)| WORDS.iter().any(|w| k.contains(w))).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The relevant options of the running kernel, when it exposes its config.
pub fn running_kernel() -> Option<Result<BTreeMap<String, String>, String>> {
    let gz = std::fs::read("/proc/config.gz").ok()?;
    Some(gunzip(&gz).map(|b| relevant(&parse(&String::from_utf8_lossy(&b)))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gunzips_what_gzip_wrote() {
        let Ok(gzip) = which::which("gzip") else { return };
        let text = "CONFIG_BPF=y\n# CONFIG_FPROBE is not set\nCONFIG_KPROBES=y\nCONFIG_LOCALVERSION=\"-x\"\nCONFIG_SOUND=m\n";
        let gz = duct::cmd(gzip, ["-c"]).stdin_bytes(text.as_bytes()).stdout_capture().run().unwrap().stdout;
        let back = gunzip(&gz).unwrap();
        assert_eq!(String::from_utf8(back).unwrap(), text);
        let m = parse(text);
        assert_eq!(m["CONFIG_LOCALVERSION"], "-x");
        assert!(!m.contains_key("CONFIG_FPROBE"));
        let r = relevant(&m);
        assert_eq!(r.keys().collect::<Vec<_>>(), ["CONFIG_BPF", "CONFIG_KPROBES"]);
        assert!(gunzip(&gz[..gz.len() / 2]).is_err());
    }
}
