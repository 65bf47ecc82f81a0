//! A writer for the newc ("070701", SVR4 without CRC) cpio format, the format
//! the kernel unpacks as an initramfs (Documentation/driver-api/early-userspace/
//! buffer-format.rst).
//!
//! Every entry is a 110-byte ASCII header (13 fields of 8 hex digits), the path
//! with its NUL, padding to a multiple of 4, the data, padding to a multiple of
//! 4. The archive ends with an entry named `TRAILER!!!`.
//!
//! Entries are kept sorted by path, which puts every directory before its
//! contents (a prefix sorts first): the kernel's unpacker does not create
//! missing parents, so the writer adds them itself (mode 0755). Adding a path
//! twice replaces the first entry. Owner is root, mtime 0, so that one input
//! always gives the same bytes.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 6] = b"070701";
const TRAILER: &str = "TRAILER!!!";
const HEADER_LEN: usize = 110;

// File type bits of st_mode (the same on every Linux architecture).
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// Where a regular file's bytes come from.
#[derive(Clone, Debug)]
enum Data {
    Bytes(Vec<u8>),
    /// Read when the archive is written, so building an image does not hold
    /// every binary in memory twice.
    Host(PathBuf),
}

#[derive(Clone, Debug)]
enum Kind {
    Dir,
    File(Data),
    Symlink(String),
    CharDevice { major: u32, minor: u32 },
}

#[derive(Clone, Debug)]
struct Entry {
    /// Permission bits only (the type comes from `kind`).
    perm: u32,
    kind: Kind,
}

/// An initramfs under construction. Paths may be given with or without a
/// leading `/`; they are stored relative (`init`, `dev/console`).
#[derive(Clone, Debug, Default)]
pub struct Initramfs {
    entries: BTreeMap<String, Entry>,
}

/// `/a//b/` → `a/b`. Rejects `..` and empty paths: an archive path always
/// names something inside the image.
fn clean(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    assert!(!parts.is_empty(), "initramfs: empty path `{path}`");
    assert!(!parts.contains(&".."), "initramfs: `..` in path `{path}`");
    parts.join("/")
}

impl Initramfs {
    pub fn new() -> Self {
        Self::default()
    }

    fn add(mut self, path: &str, perm: u32, kind: Kind) -> Self {
        let path = clean(path);
        // Parents first, unless already given (with their own mode).
        let mut parent = String::new();
        for part in path.split('/').collect::<Vec<_>>().split_last().map(|(_, p)| p.to_vec()).unwrap_or_default() {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            self.entries.entry(parent.clone()).or_insert(Entry { perm: 0o755, kind: Kind::Dir });
        }
        self.entries.insert(path, Entry { perm: perm & 0o7777, kind });
        self
    }

    pub fn dir(self, path: &str, mode: u32) -> Self {
        self.add(path, mode, Kind::Dir)
    }

    pub fn file(self, path: &str, bytes: impl Into<Vec<u8>>, mode: u32) -> Self {
        self.add(path, mode, Kind::File(Data::Bytes(bytes.into())))
    }

    /// A file whose bytes are read from `host_path` when the archive is written.
    pub fn file_from(self, path: &str, host_path: impl Into<PathBuf>, mode: u32) -> Self {
        self.add(path, mode, Kind::File(Data::Host(host_path.into())))
    }

    pub fn symlink(self, path: &str, target: &str) -> Self {
        self.add(path, 0o777, Kind::Symlink(target.to_string()))
    }

    /// A character device node (e.g. `/dev/console` = 5:1), created by the
    /// kernel with mknod while it unpacks.
    pub fn char_device(self, path: &str, mode: u32, major: u32, minor: u32) -> Self {
        self.add(path, mode, Kind::CharDevice { major, minor })
    }

    /// The paths in archive order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(|s| s.as_str())
    }

    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(&clean(path))
    }

    /// Writes the archive; returns the number of bytes written.
    pub fn write_to<W: Write>(&self, out: W) -> io::Result<u64> {
        let mut w = Counting { inner: out, n: 0 };
        for (ino, (path, e)) in self.entries.iter().enumerate() {
            let ino = ino as u32 + 1;
            match &e.kind {
                Kind::Dir => write_entry(&mut w, path, ino, S_IFDIR | e.perm, 2, (0, 0), &mut io::empty(), 0)?,
                Kind::Symlink(target) => {
                    write_entry(&mut w, path, ino, S_IFLNK | e.perm, 1, (0, 0), &mut target.as_bytes(), target.len() as u64)?
                }
                Kind::CharDevice { major, minor } => {
                    write_entry(&mut w, path, ino, S_IFCHR | e.perm, 1, (*major, *minor), &mut io::empty(), 0)?
                }
                Kind::File(Data::Bytes(b)) => {
                    write_entry(&mut w, path, ino, S_IFREG | e.perm, 1, (0, 0), &mut b.as_slice(), b.len() as u64)?
                }
                Kind::File(Data::Host(host)) => {
                    let with_path = |err: io::Error| io::Error::new(err.kind(), format!("{}: {err}", host.display()));
                    let f = std::fs::File::open(host).map_err(with_path)?;
                    let len = f.metadata().map_err(with_path)?.len();
                    write_entry(&mut w, path, ino, S_IFREG | e.perm, 1, (0, 0), &mut f.take(len), len).map_err(with_path)?
                }
            }
        }
        write_entry(&mut w, TRAILER, 0, 0, 1, (0, 0), &mut io::empty(), 0)?;
        w.inner.flush()?;
        Ok(w.n)
    }

    /// Writes the archive to a file (created or truncated).
    pub fn write_file(&self, path: &Path) -> io::Result<u64> {
        let f = std::fs::File::create(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        self.write_to(io::BufWriter::with_capacity(1 << 20, f))
    }
}

/// Counts bytes, for the padding.
struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Counting<W> {
    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.inner.write_all(b)?;
        self.n += b.len() as u64;
        Ok(())
    }

    fn pad4(&mut self) -> io::Result<()> {
        let pad = (4 - (self.n % 4) as usize) % 4;
        self.put(&[0u8; 3][..pad])
    }
}

#[allow(clippy::too_many_arguments)]
fn write_entry<W: Write>(
    w: &mut Counting<W>,
    path: &str,
    ino: u32,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    data: &mut dyn Read,
    len: u64,
) -> io::Result<()> {
    let size = u32::try_from(len).map_err(|_| io::Error::other(format!("{path}: {len} bytes is too large for newc (4 GiB)")))?;
    let namesize = path.len() as u32 + 1;
    // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
    let fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0];
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    for f in fields {
        header.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    debug_assert_eq!(header.len(), HEADER_LEN);
    w.put(&header)?;
    w.put(path.as_bytes())?;
    w.put(&[0])?;
    w.pad4()?;
    let copied = io::copy(data, &mut w.inner)?;
    w.n += copied;
    if copied != len {
        return Err(io::Error::other(format!("{path}: expected {len} bytes, read {copied} (file changed while writing?)")));
    }
    w.pad4()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One parsed entry of a newc archive.
    #[derive(Debug, PartialEq, Eq)]
    pub(crate) struct Parsed {
        pub name: String,
        pub mode: u32,
        pub nlink: u32,
        pub rdev: (u32, u32),
        pub data: Vec<u8>,
    }

    /// A strict reader: checks the magic, the NUL, the zero padding and that
    /// the trailer ends the archive (nothing but the trailer's padding after it).
    pub(crate) fn parse(mut b: &[u8]) -> Vec<Parsed> {
        let total = b.len();
        let mut out = Vec::new();
        loop {
            let off = total - b.len();
            assert_eq!(off % 4, 0, "entry at {off} not 4-aligned");
            assert_eq!(&b[..6], MAGIC, "magic at {off}");
            let field = |i: usize| u32::from_str_radix(std::str::from_utf8(&b[6 + 8 * i..14 + 8 * i]).unwrap(), 16).unwrap();
            let (mode, nlink, size, rdev, namesize, check) =
                (field(1), field(4), field(6) as usize, (field(9), field(10)), field(11) as usize, field(12));
            assert_eq!(check, 0);
            let name_end = HEADER_LEN + namesize;
            assert_eq!(b[name_end - 1], 0, "name not NUL-terminated");
            let name = std::str::from_utf8(&b[HEADER_LEN..name_end - 1]).unwrap().to_string();
            let data_start = name_end.next_multiple_of(4);
            assert!(b[name_end..data_start].iter().all(|&x| x == 0), "name padding");
            let data = b[data_start..data_start + size].to_vec();
            let next = (data_start + size).next_multiple_of(4);
            assert!(b[data_start + size..next].iter().all(|&x| x == 0), "data padding");
            b = &b[next..];
            if name == TRAILER {
                assert!(b.is_empty(), "{} bytes after the trailer", b.len());
                return out;
            }
            out.push(Parsed { name, mode, nlink, rdev, data });
        }
    }

    fn sample() -> Initramfs {
        Initramfs::new()
            .dir("/proc", 0o555)
            .file("/init", b"#!x\n".to_vec(), 0o755)
            .file("/lib/x86_64-linux-gnu/libc.so.6", vec![7u8; 5], 0o644)
            .symlink("/lib64/ld.so", "/lib/x86_64-linux-gnu/ld.so")
            .char_device("/dev/console", 0o600, 5, 1)
            .dir("tmp", 0o1777)
    }

    #[test]
    fn roundtrip_with_parents_modes_and_alignment() {
        let mut buf = Vec::new();
        let n = sample().write_to(&mut buf).unwrap();
        assert_eq!(n as usize, buf.len());
        assert_eq!(buf.len() % 4, 0);
        let entries = parse(&buf);
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "dev",
                "dev/console",
                "init",
                "lib",
                "lib/x86_64-linux-gnu",
                "lib/x86_64-linux-gnu/libc.so.6",
                "lib64",
                "lib64/ld.so",
                "proc",
                "tmp"
            ]
        );
        let get = |n: &str| entries.iter().find(|e| e.name == n).unwrap();
        assert_eq!(get("init").mode, S_IFREG | 0o755);
        assert_eq!(get("init").data, b"#!x\n");
        assert_eq!(get("lib").mode, S_IFDIR | 0o755, "implied parent");
        assert_eq!(get("lib").nlink, 2);
        assert_eq!(get("tmp").mode, S_IFDIR | 0o1777);
        assert_eq!(get("lib/x86_64-linux-gnu/libc.so.6").data, vec![7u8; 5]);
        assert_eq!(get("lib64/ld.so").mode, S_IFLNK | 0o777);
        assert_eq!(get("lib64/ld.so").data, b"/lib/x86_64-linux-gnu/ld.so");
        assert_eq!(get("dev/console").mode, S_IFCHR | 0o600);
        assert_eq!(get("dev/console").rdev, (5, 1));
    }

    #[test]
    fn same_input_same_bytes_and_later_entry_wins() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        sample().write_to(&mut a).unwrap();
        sample().write_to(&mut b).unwrap();
        assert_eq!(a, b);
        let mut c = Vec::new();
        sample().file("init", b"second".to_vec(), 0o700).write_to(&mut c).unwrap();
        let init = parse(&c).into_iter().find(|e| e.name == "init").unwrap();
        assert_eq!((init.mode, init.data.as_slice()), (S_IFREG | 0o700, &b"second"[..]));
    }

    #[test]
    fn file_from_reads_the_host_file_at_write_time() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("blob");
        std::fs::write(&host, vec![0xabu8; 4097]).unwrap();
        let img = Initramfs::new().file_from("bin/blob", &host, 0o755);
        let mut buf = Vec::new();
        img.write_to(&mut buf).unwrap();
        let blob = parse(&buf).into_iter().find(|e| e.name == "bin/blob").unwrap();
        assert_eq!(blob.data, vec![0xabu8; 4097]);
        let missing = Initramfs::new().file_from("x", dir.path().join("nope"), 0o644).write_to(Vec::new()).unwrap_err();
        assert!(missing.to_string().contains("nope"), "{missing}");
    }

    #[test]
    #[should_panic(expected = "`..`")]
    fn dotdot_is_refused() {
        let _ = Initramfs::new().file("a/../b", Vec::new(), 0o644);
    }

    /// GNU cpio, when installed, lists and extracts the same archive.
    #[test]
    fn gnu_cpio_reads_it() {
        let Ok(cpio) = which::which("cpio") else {
            eprintln!("cpio not installed; skipped");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.cpio");
        // No device node: extracting one needs CAP_MKNOD, which tests may lack.
        let img = Initramfs::new()
            .file("/init", b"hello".to_vec(), 0o755)
            .file("/cases/uprobe/a.yaml", b"id: a\n".to_vec(), 0o644)
            .symlink("/lib64/ld.so", "../lib/ld.so")
            .dir("/tmp", 0o1777);
        img.write_file(&archive).unwrap();
        let list = duct::cmd(&cpio, ["-t", "--quiet", "-F", archive.to_str().unwrap()]).stdout_capture().read().unwrap();
        assert_eq!(
            list.lines().collect::<Vec<_>>(),
            ["cases", "cases/uprobe", "cases/uprobe/a.yaml", "init", "lib64", "lib64/ld.so", "tmp"]
        );
        let out = dir.path().join("x");
        std::fs::create_dir(&out).unwrap();
        duct::cmd(&cpio, ["-i", "-d", "--quiet", "--no-absolute-filenames", "-F", archive.to_str().unwrap()]).dir(&out).run().unwrap();
        assert_eq!(std::fs::read(out.join("init")).unwrap(), b"hello");
        assert_eq!(std::fs::read_link(out.join("lib64/ld.so")).unwrap(), Path::new("../lib/ld.so"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(out.join("init")).unwrap().permissions().mode() & 0o777, 0o755);
    }
}
