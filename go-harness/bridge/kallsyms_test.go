package bridge

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

const fakeKallsyms = `ffffffff81000000 T _stext
ffffffff81234560 T __x64_sys_getpid
ffffffff81234580 T __ia32_sys_getpid
ffffffff812345a0 T __x64_sys_openat
ffffffff812345c0 T sys_ni_syscall
ffffffff812345e0 T do_nanosleep
ffffffffc0001000 t sys_in_module	[some_mod]
`

func TestPrefixSyscallSymbols(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []string
		want    []string
		changed bool
	}{
		{"syscalls get the prefix", []string{"sys_getpid", "sys_openat"}, []string{"__x64_sys_getpid", "__x64_sys_openat"}, true},
		{"listed as is: unchanged", []string{"sys_ni_syscall", "sys_in_module"}, []string{"sys_ni_syscall", "sys_in_module"}, false},
		{"not a syscall name", []string{"do_nanosleep", "getpid"}, []string{"do_nanosleep", "getpid"}, false},
		{"missing under both names: unchanged", []string{"sys_nonexistent"}, []string{"sys_nonexistent"}, false},
		{"already prefixed", []string{"__x64_sys_getpid"}, []string{"__x64_sys_getpid"}, false},
		{"mixed, order kept", []string{"do_nanosleep", "sys_getpid", "sys_nonexistent"},
			[]string{"do_nanosleep", "__x64_sys_getpid", "sys_nonexistent"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, changed, err := prefixSyscallSymbols(tc.in, strings.NewReader(fakeKallsyms), "__x64_")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) || changed != tc.changed {
				t.Errorf("got %v (changed %v), want %v (changed %v)", got, changed, tc.want, tc.changed)
			}
		})
	}

	// Another arch's prefix picks that arch's entry.
	got, _, _ := prefixSyscallSymbols([]string{"sys_getpid"}, strings.NewReader(fakeKallsyms), "__ia32_")
	if got[0] != "__ia32_sys_getpid" {
		t.Errorf("ia32: %v", got)
	}
	// No prefix on this arch: nothing to do, kallsyms not even read.
	got, changed, err := prefixSyscallSymbols([]string{"sys_getpid"}, iotest.ErrReader(errors.New("unread")), "")
	if err != nil || changed || got[0] != "sys_getpid" {
		t.Errorf("empty prefix: %v %v %v", got, changed, err)
	}
	// A read error is reported, not swallowed.
	if _, _, err := prefixSyscallSymbols([]string{"sys_getpid"}, iotest.ErrReader(errors.New("boom")), "__x64_"); err == nil {
		t.Error("read error not reported")
	}
}
