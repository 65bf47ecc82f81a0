package bridge

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf/link"

	"probeconf/bridge/bridgetest"
)

// The library and the program print where their functions are in their files,
// computed from /proc/self/maps (the kernel's view: address - mapping start +
// mapping file offset). That is what a uprobe offset must be, independently of
// how the resolver under test reads the ELF.
const libSrc = `
long pc_so_leaf(long x) { return x + 40; }
/* A hidden alias gives the function's own address, never a PLT stub. */
extern long pc_so_leaf_self(long) __attribute__((alias("pc_so_leaf"), visibility("hidden")));
unsigned long pc_so_addr(void) { return (unsigned long)&pc_so_leaf_self; }
`

const exeSrc = `
#include <stdio.h>
#include <string.h>
unsigned long pc_so_addr(void);
__attribute__((noinline, noipa)) long pc_leaf(long x) { return x * 2 + 1; }
static void where(const char *name, unsigned long addr) {
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi, off;
		if (sscanf(line, "%lx-%lx %*s %lx", &lo, &hi, &off) == 3 && lo <= addr && addr < hi) {
			printf("%s %lu\n", name, addr - lo + off);
			break;
		}
	}
	fclose(f);
}
int main(void) {
	where("pc_leaf", (unsigned long)&pc_leaf);
	where("pc_so_leaf", pc_so_addr());
	printf("%ld\n", pc_leaf(1));
	return 0;
}
`

func buildELFFixtures(t *testing.T) (exe, so string, want map[string]uint64) {
	t.Helper()
	gcc := bridgetest.RequireGCC(t)
	dir := t.TempDir()
	so = bridgetest.BuildC(t, gcc, dir, "libpcso.so", libSrc, "-shared", "-fPIC")
	exe = bridgetest.BuildC(t, gcc, dir, "pcexe", exeSrc, "-L"+dir, "-lpcso", "-Wl,-rpath,"+dir)
	out, err := exec.Command(exe).Output()
	if err != nil {
		t.Fatalf("run %s: %v", exe, err)
	}
	want = map[string]uint64{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			v, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			want[f[0]] = v
		}
	}
	if len(want) != 2 {
		t.Fatalf("fixture printed %q", out)
	}
	return exe, so, want
}

func TestSymbolFileOffset(t *testing.T) {
	exe, so, want := buildELFFixtures(t)

	for _, tc := range []struct{ path, sym string }{{exe, "pc_leaf"}, {so, "pc_so_leaf"}} {
		got, err := symbolFileOffset(tc.path, tc.sym, 0)
		if err != nil {
			t.Fatalf("%s in %s: %v", tc.sym, filepath.Base(tc.path), err)
		}
		if got != want[tc.sym] {
			t.Errorf("%s in %s: offset %#x, /proc/self/maps says %#x", tc.sym, filepath.Base(tc.path), got, want[tc.sym])
		}
		if got4, err := symbolFileOffset(tc.path, tc.sym, 4); err != nil || got4 != got+4 {
			t.Errorf("%s+4: %#x, %v", tc.sym, got4, err)
		}
	}

	if got, err := symbolFileOffset(exe, "", 0x1234); err != nil || got != 0x1234 {
		t.Errorf("empty symbol must pass the absolute offset through: %#x, %v", got, err)
	}
	if _, err := symbolFileOffset(exe, "no_such_function", 0); !errors.Is(err, link.ErrNoSymbol) {
		t.Errorf("missing symbol: %v, want link.ErrNoSymbol", err)
	}
	// Imported from the library: in the executable's .dynsym, but undefined there.
	if _, err := symbolFileOffset(exe, "pc_so_addr", 0); !errors.Is(err, link.ErrNoSymbol) || !strings.Contains(err.Error(), "shared library") {
		t.Errorf("imported symbol: %v", err)
	}
	if _, err := symbolFileOffset(exe, "pc_leaf", 1<<20); err == nil {
		t.Errorf("offset beyond the symbol's size: no error")
	}
	if _, err := symbolFileOffset(filepath.Join(filepath.Dir(exe), "pcexe.c"), "pc_leaf", 0); err == nil {
		t.Errorf("not an ELF file: no error")
	}
}
