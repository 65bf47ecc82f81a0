package loader

import (
	"os"
	"reflect"
	"testing"

	"github.com/cilium/ebpf"
)

// One parse per process: the bridges' spec is the one cilium's loads use.
func TestKernelTypesIsSharedWithCiliumsCache(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("no kernel BTF:", err)
	}
	a, err := KernelTypes()
	if err != nil {
		t.Fatal(err)
	}
	b, err := KernelTypes()
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatal("KernelTypes parsed the kernel's BTF twice")
	}
	opts := withKernelCache(ebpf.CollectionOptions{})
	field := reflect.ValueOf(opts).FieldByName("Cache")
	if !field.IsValid() {
		t.Skip("this cilium/ebpf has no CollectionOptions.Cache (it caches the kernel spec itself)")
	}
	if field.IsNil() {
		t.Fatal("CollectionOptions.Cache not set")
	}
	out := field.MethodByName("Kernel").Call(nil)
	if !out[1].IsNil() || out[0].Interface() != any(a) {
		t.Fatal("cilium's cache holds another spec than KernelTypes")
	}
}
