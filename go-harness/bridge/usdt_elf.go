package bridge

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// USDT sites from .note.stapsdt, resolved to attach points the way libbpf
// 1.7's usdt.c does (collect_usdt_targets and what it calls).

const (
	usdtNoteSection = ".note.stapsdt"
	usdtBaseSection = ".stapsdt.base"
	usdtNoteType    = 3
	usdtNoteOwner   = "stapsdt"
)

// usdtNote is one .note.stapsdt entry (parse_usdt_note).
type usdtNote struct {
	Provider, Name string
	Args           string // "" when the note's args are empty or start with ':'
	Loc            uint64 // the site's link-time address (pc)
	Base           uint64 // the link-time address of .stapsdt.base
	Sema           uint64 // the semaphore's address, 0 without one
}

// usdtSite is one attach point of a USDT probe: a note matching
// provider:name, resolved like libbpf's struct usdt_target.
type usdtSite struct {
	Note usdtNote
	// AbsIP is the address bpf programs see: the (base-adjusted) virtual
	// address for ET_EXEC; for ET_DYN libbpf computes a runtime address only
	// when the kernel lacks BPF cookies (from /proc/PID/maps), else it stays
	// the virtual address.
	AbsIP uint64
	// RelIP is the file offset the uprobe is attached at.
	RelIP uint64
	// SemaOff is the semaphore's file offset (the uprobe's ref_ctr_offset), 0 without one.
	SemaOff uint64
	// NopCombo: the site is a `nop; nop5` pair and the kernel has the uprobe
	// syscall, so AbsIP and RelIP were moved to the nop5 (+1).
	NopCombo bool
	Spec     usdtSpec
	SpecID   uint32 // the spec's id in __bpf_usdt_specs (the uprobe's BPF cookie)
}

// elfSeg is libbpf's struct elf_seg.
type elfSeg struct {
	start, end, offset uint64
	exec               bool
}

// usdtErrorf builds an error carrying errno, the way libbpf returns -errno:
// the classifier then gives it the class libbpf's error gets on the Rust side.
func usdtErrorf(errno unix.Errno, format string, a ...any) error {
	return fmt.Errorf("usdt: "+format+": %w", append(a, errno)...)
}

// openUSDTBinary opens path as libbpf's elf_open + sanity_check_usdt_elf do:
// a missing file keeps its errno (ENOENT), anything but a 64-bit ET_EXEC or
// ET_DYN ELF file of the host's byte order is EBADF.
func openUSDTBinary(path string) (*os.File, *elf.File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("usdt: failed to open ELF binary: %w", err)
	}
	ef, err := elf.NewFile(fd)
	if err != nil {
		fd.Close()
		return nil, nil, usdtErrorf(unix.EBADF, "unrecognized ELF kind for '%s' (%v)", path, err)
	}
	fail := func(format string, a ...any) (*os.File, *elf.File, error) {
		ef.Close()
		fd.Close()
		return nil, nil, usdtErrorf(unix.EBADF, format, a...)
	}
	if ef.Class != elf.ELFCLASS64 {
		return fail("attaching to %v ELF binary '%s' is not supported", ef.Class, path)
	}
	if ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN {
		return fail("unsupported type of ELF binary '%s' (%v), only ET_EXEC and ET_DYN are supported", path, ef.Type)
	}
	if ef.Data != elf.ELFDATA2LSB || binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		return fail("ELF endianness mismatch for '%s'", path)
	}
	return fd, ef, nil
}

// sectionByName is find_elf_sec_by_name: the first section of that name.
func sectionByName(ef *elf.File, name string) *elf.Section {
	for _, s := range ef.Sections {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// parseUSDTNotes returns every note of the binary's .note.stapsdt section,
// failing like libbpf when the section is missing (ENOENT), is not SHT_NOTE
// or holds a note that is not a well-formed stapsdt note (EINVAL): libbpf
// refuses the whole section then, not just that note.
func parseUSDTNotes(ef *elf.File, path string) ([]usdtNote, error) {
	sec := sectionByName(ef, usdtNoteSection)
	if sec == nil {
		return nil, usdtErrorf(unix.ENOENT, "no USDT notes section (%s) found in '%s'", usdtNoteSection, path)
	}
	if sec.Type != elf.SHT_NOTE {
		return nil, usdtErrorf(unix.EINVAL, "invalid USDT notes section (%s) in '%s'", usdtNoteSection, path)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, usdtErrorf(unix.EINVAL, "read %s of '%s': %v", usdtNoteSection, path, err)
	}
	// gelf_getnote: 4-byte alignment of name and desc, 8 when the section is
	// 8-aligned (ELF_T_NHDR8).
	align := uint64(4)
	if sec.Addralign == 8 {
		align = 8
	}
	var notes []usdtNote
	for off := uint64(0); off+12 <= uint64(len(data)); {
		namesz := uint64(ef.ByteOrder.Uint32(data[off:]))
		descsz := uint64(ef.ByteOrder.Uint32(data[off+4:]))
		typ := ef.ByteOrder.Uint32(data[off+8:])
		nameOff := off + 12
		descOff := alignUp(nameOff+namesz, align)
		next := alignUp(descOff+descsz, align)
		if descOff+descsz > uint64(len(data)) || nameOff+namesz > uint64(len(data)) {
			break // gelf_getnote stops at a truncated note
		}
		note, err := parseUSDTNote(data[nameOff:nameOff+namesz], typ, data[descOff:descOff+descsz], ef.ByteOrder)
		if err != nil {
			return nil, err
		}
		notes = append(notes, note)
		off = next
	}
	return notes, nil
}

func alignUp(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }

// parseUSDTNote is libbpf's parse_usdt_note: owner "stapsdt" (compared over
// the note's name size, NUL included), type 3, then three addresses (pc,
// base, semaphore) and three NUL-terminated strings: provider, non-empty
// name, args.
func parseUSDTNote(name []byte, typ uint32, desc []byte, bo binary.ByteOrder) (usdtNote, error) {
	if !strncmpEqual(name, usdtNoteOwner, len(name)) {
		return usdtNote{}, usdtErrorf(unix.EINVAL, "note owner %q is not %q", cString(name), usdtNoteOwner)
	}
	if typ != usdtNoteType {
		return usdtNote{}, usdtErrorf(unix.EINVAL, "note type %d is not %d (NT_STAPSDT)", typ, usdtNoteType)
	}
	if len(desc) < 3*8+3 {
		return usdtNote{}, usdtErrorf(unix.EINVAL, "stapsdt note of %d bytes is too short", len(desc))
	}
	note := usdtNote{Loc: bo.Uint64(desc[0:]), Base: bo.Uint64(desc[8:]), Sema: bo.Uint64(desc[16:])}
	rest := desc[24:]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		return usdtNote{}, usdtErrorf(unix.EINVAL, "stapsdt note: provider is not NUL-terminated")
	}
	note.Provider = string(rest[:i])
	rest = rest[i+1:]
	if len(rest) == 0 || rest[0] == 0 {
		return usdtNote{}, usdtErrorf(unix.EINVAL, "stapsdt note of provider %q: missing or empty name", note.Provider)
	}
	i = bytes.IndexByte(rest, 0)
	if i < 0 {
		return usdtNote{}, usdtErrorf(unix.EINVAL, "stapsdt note of provider %q: name is not NUL-terminated", note.Provider)
	}
	note.Name = string(rest[:i])
	rest = rest[i+1:]
	if len(rest) == 0 {
		return usdtNote{}, usdtErrorf(unix.EINVAL, "stapsdt note %s:%s: missing arguments spec", note.Provider, note.Name)
	}
	// libbpf reads args as a C string from here: up to the next NUL, which
	// may lie past the note (in practice the note ends with it).
	if i = bytes.IndexByte(rest, 0); i >= 0 {
		rest = rest[:i]
	}
	if len(rest) > 0 && rest[0] != ':' {
		note.Args = string(rest)
	}
	return note, nil
}

// strncmpEqual is strncmp(a, b, n) == 0 for a note name a of len(a) bytes
// (bytes past it read as NUL) and a C string b.
func strncmpEqual(a []byte, b string, n int) bool {
	for i := 0; i < n; i++ {
		var ca, cb byte
		if i < len(a) {
			ca = a[i]
		}
		if i < len(b) {
			cb = b[i]
		}
		if ca != cb {
			return false
		}
		if ca == 0 {
			return true
		}
	}
	return true
}

// cBytes cuts b at its first NUL, as C string functions see it.
func cBytes(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

func cString(b []byte) string { return string(cBytes(b)) }

// elfSegments is parse_elf_segs: every PT_LOAD, sorted by start address.
func elfSegments(ef *elf.File, path string) ([]elfSeg, error) {
	var segs []elfSeg
	for _, p := range ef.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		segs = append(segs, elfSeg{start: p.Vaddr, end: p.Vaddr + p.Memsz, offset: p.Off, exec: p.Flags&elf.PF_X != 0})
	}
	if len(segs) == 0 {
		return nil, usdtErrorf(unix.ESRCH, "failed to find PT_LOAD program headers in '%s'", path)
	}
	sort.SliceStable(segs, func(i, j int) bool { return segs[i].start < segs[j].start })
	return segs, nil
}

// findELFSeg is find_elf_seg: the segment whose [start, end) holds addr.
func findELFSeg(segs []elfSeg, addr uint64) *elfSeg {
	for i := range segs {
		if segs[i].start <= addr && addr < segs[i].end {
			return &segs[i]
		}
	}
	return nil
}

// findVMASeg is find_vma_seg: the mapping whose file range holds off.
func findVMASeg(segs []elfSeg, off uint64) *elfSeg {
	for i := range segs {
		if segs[i].offset <= off && off < segs[i].offset+(segs[i].end-segs[i].start) {
			return &segs[i]
		}
	}
	return nil
}

// vmaSegments is parse_vma_segs: the executable mappings of path in
// /proc/PID/maps (the path resolved with realpath, or /proc/PID/root/PATH
// taken as PATH for that pid).
func vmaSegments(pid int, path string) ([]elfSeg, error) {
	want := path
	if rest, ok := strings.CutPrefix(path, fmt.Sprintf("/proc/%d/root", pid)); ok && rest != "" {
		want = rest
	} else if real, err := filepath.EvalSymlinks(path); err == nil {
		if abs, err := filepath.Abs(real); err == nil {
			want = abs
		}
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, fmt.Errorf("usdt: failed to open '/proc/%d/maps' to get base addr of '%s': %w", pid, path, err)
	}
	defer f.Close()
	segs, err := parseMaps(f, want)
	if err != nil {
		return nil, err
	}
	if len(segs) == 0 {
		return nil, usdtErrorf(unix.ESRCH, "failed to find '%s' (resolved to '%s') within PID %d memory mappings", path, want, pid)
	}
	sort.SliceStable(segs, func(i, j int) bool { return segs[i].start < segs[j].start })
	return segs, nil
}

// parseMaps reads /proc/PID/maps lines ("start-end mode offset dev inode
// path") and keeps the executable mappings of path.
func parseMaps(r io.Reader, path string) ([]elfSeg, error) {
	var segs []elfSeg
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) < 6 {
			continue // no path
		}
		// The path is the rest of the line after the inode, leading blanks stripped.
		idx := 0
		for k := 0; k < 5; k++ {
			idx += strings.Index(line[idx:], fields[k]) + len(fields[k])
		}
		if strings.TrimLeft(line[idx:], " \t") != path {
			continue
		}
		mode := fields[1]
		if len(mode) < 3 || mode[2] != 'x' {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		off, err3 := strconv.ParseUint(fields[2], 16, 64)
		if !ok || err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("usdt: malformed maps line %q", line)
		}
		segs = append(segs, elfSeg{start: start, end: end, offset: off, exec: true})
	}
	return segs, sc.Err()
}

// nopCombo is `nop; nop5` (90, then 0f 1f 44 00 00): the pair libbpf 1.7
// moves a probe past, onto the 5-byte nop, when the kernel has the uprobe
// syscall (has_nop_combo). `nop; nop10` is not recognised.
var nopCombo = []byte{0x90, 0x0f, 0x1f, 0x44, 0x00, 0x00}

// hasNopCombo is libbpf's has_nop_combo: pread of 6 bytes at the site's file
// offset (x86_64 only).
func hasNopCombo(f io.ReaderAt, off uint64) bool {
	if runtime.GOARCH != "amd64" {
		return false
	}
	buf := make([]byte, len(nopCombo))
	if n, err := f.ReadAt(buf, int64(off)); n != len(buf) || (err != nil && err != io.EOF) {
		return false
	}
	return bytes.Equal(buf, nopCombo)
}

// collectUSDTSites is libbpf's collect_usdt_targets: every note of
// provider:name in the binary, its pc adjusted by .stapsdt.base (prelink) and
// translated to a file offset through its PT_LOAD segment (which must be
// executable), its semaphore translated to a file offset through the
// (non-executable) segment holding it, the nop;nop5 move, and its parsed
// spec. pid is in libbpf's convention (-1: every process): it matters only
// for a shared object on a kernel without BPF cookies, whose runtime
// addresses come from /proc/PID/maps. No matching note is ENOENT.
func collectUSDTSites(f io.ReaderAt, ef *elf.File, path string, pid int, provider, name string, cookie uint64, feat USDTFeatures) ([]usdtSite, error) {
	notes, err := parseUSDTNotes(ef, path)
	if err != nil {
		return nil, err
	}
	segs, err := elfSegments(ef, path)
	if err != nil {
		return nil, fmt.Errorf("usdt: failed to process ELF program segments for '%s': %w", path, err)
	}
	var base uint64
	if s := sectionByName(ef, usdtBaseSection); s != nil {
		base = s.Addr
	}
	var vmaSegs []elfSeg
	var sites []usdtSite
	for _, note := range notes {
		if note.Provider != provider || note.Name != name {
			continue
		}
		// Prelink compensation: the note records .stapsdt.base's link-time
		// address; the section header has the (possibly moved) actual one.
		// libbpf applies the difference to the pc only, not the semaphore.
		absIP := note.Loc
		if base != 0 && note.Base != 0 {
			absIP += base - note.Base
		}
		seg := findELFSeg(segs, absIP)
		if seg == nil {
			return nil, usdtErrorf(unix.ESRCH, "failed to find ELF program segment for '%s:%s' in '%s' at IP %#x", provider, name, path, absIP)
		}
		if !seg.exec {
			return nil, usdtErrorf(unix.ESRCH, "matched ELF binary '%s' segment [%#x, %#x) for '%s:%s' at IP %#x is not executable",
				path, seg.start, seg.end, provider, name, absIP)
		}
		relIP := absIP - seg.start + seg.offset

		if ef.Type == elf.ET_DYN && !feat.BPFCookie {
			// Without BPF cookies the program finds its spec by the runtime
			// address, which for a shared object needs a process.
			if pid < 0 {
				return nil, &unsupportedError{feature: "USDT in a shared library without a pid", minKernel: "5.15",
					hint: "without BPF cookies a site is found by its runtime address, which needs a process",
					err:  usdtErrorf(unix.EOPNOTSUPP, "attaching to shared libraries without specific PID is not supported on current kernel")}
			}
			if vmaSegs == nil {
				if vmaSegs, err = vmaSegments(pid, path); err != nil {
					return nil, fmt.Errorf("usdt: failed to get memory segments in PID %d for shared library '%s': %w", pid, path, err)
				}
			}
			vs := findVMASeg(vmaSegs, relIP)
			if vs == nil {
				return nil, usdtErrorf(unix.ESRCH, "failed to find shared lib memory segment for '%s:%s' in '%s' at relative IP %#x",
					provider, name, path, relIP)
			}
			absIP = vs.start - vs.offset + relIP
		}

		var semaOff uint64
		if note.Sema != 0 {
			if !feat.SemaRefcnt {
				return nil, &unsupportedError{feature: "USDT semaphores", minKernel: "4.20",
					hint: "the uprobe PMU has no ref_ctr_offset",
					err:  usdtErrorf(unix.EOPNOTSUPP, "kernel doesn't support USDT semaphore refcounting for '%s:%s' in '%s'", provider, name, path)}
			}
			ss := findELFSeg(segs, note.Sema)
			if ss == nil {
				return nil, usdtErrorf(unix.ESRCH, "failed to find ELF loadable segment with semaphore of '%s:%s' in '%s' at %#x",
					provider, name, path, note.Sema)
			}
			if ss.exec {
				return nil, usdtErrorf(unix.ESRCH, "matched ELF binary '%s' segment [%#x, %#x] for semaphore of '%s:%s' at %#x is executable",
					path, ss.start, ss.end, provider, name, note.Sema)
			}
			semaOff = note.Sema - ss.start + ss.offset
		}

		site := usdtSite{Note: note, AbsIP: absIP, RelIP: relIP, SemaOff: semaOff}
		if feat.UprobeSyscall && hasNopCombo(f, relIP) {
			site.NopCombo = true
			site.AbsIP++
			site.RelIP++
		}
		if site.Spec, err = parseUSDTSpec(provider, name, note.Args, cookie); err != nil {
			return nil, err
		}
		sites = append(sites, site)
	}
	if len(sites) == 0 {
		return nil, usdtErrorf(unix.ENOENT, "no USDT site '%s:%s' in '%s'", provider, name, path)
	}
	return sites, nil
}
