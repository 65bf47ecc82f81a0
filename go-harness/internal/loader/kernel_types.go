package loader

import (
	"fmt"
	"reflect"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// The running kernel's BTF, parsed once per harness process and shared by
// cilium's own loads (kfunc ids, AttachTo) and the bridges (the session-kfunc
// prototype pick, fsession and tracing multi targets).
//
// Why: cilium v0.22.0 no longer keeps a process-wide copy of the kernel's
// spec (v0.17.3 to v0.21.0 do): every NewCollectionWithOptions parses
// /sys/kernel/btf/vmlinux again unless CollectionOptions.Cache is set, and the
// bridges parsed it once more. One parse is about 15 ms natively and about
// 0.4 s under QEMU TCG, where the harness runs once per case: a session case
// parsed it twice, an fsession case three times.
//
// CollectionOptions.Cache (a *btf.Cache) exists only from v0.22.0, and the
// harness builds against v0.17.3 … v0.22.0 from one source, so the field is
// found by reflection: where it exists, one zero *btf.Cache (what
// btf.NewCache returns) is shared by every load and its Kernel method gives
// the bridges the same spec; where it does not, btf.LoadKernelSpec is cilium's
// own cached copy.
var kernel struct {
	mu    sync.Mutex // KernelTypes
	once  sync.Once
	cache reflect.Value // a *btf.Cache, or invalid before v0.22.0
	spec  *btf.Spec
	err   error
}

func kernelCache() reflect.Value {
	kernel.once.Do(func() {
		field, ok := reflect.TypeOf(ebpf.CollectionOptions{}).FieldByName("Cache")
		if ok && field.Type.Kind() == reflect.Pointer && field.Type.Elem().Kind() == reflect.Struct {
			kernel.cache = reflect.New(field.Type.Elem())
		}
	})
	return kernel.cache
}

// KernelTypes is the running kernel's BTF (see above): the same spec for the
// whole process. Callers only read it (the harness runs one case at a time).
func KernelTypes() (*btf.Spec, error) {
	kernel.mu.Lock()
	defer kernel.mu.Unlock()
	if kernel.spec != nil || kernel.err != nil {
		return kernel.spec, kernel.err
	}
	cache := kernelCache()
	if !cache.IsValid() {
		spec, err := btf.LoadKernelSpec()
		if err == nil {
			kernel.spec = spec
		}
		return spec, err
	}
	method := cache.MethodByName("Kernel")
	if !method.IsValid() {
		kernel.err = fmt.Errorf("cilium's btf.Cache has no Kernel method")
		return nil, kernel.err
	}
	out := method.Call(nil)
	if len(out) != 2 {
		kernel.err = fmt.Errorf("cilium's btf.Cache.Kernel returned %d values", len(out))
		return nil, kernel.err
	}
	if e, _ := out[1].Interface().(error); e != nil {
		// A failure is not remembered, as cilium's cache does not.
		return nil, e
	}
	kernel.spec, _ = out[0].Interface().(*btf.Spec)
	return kernel.spec, nil
}

// withKernelCache sets opts.Cache to the process's shared cache where cilium
// has the field.
func withKernelCache(opts ebpf.CollectionOptions) ebpf.CollectionOptions {
	if cache := kernelCache(); cache.IsValid() {
		reflect.ValueOf(&opts).Elem().FieldByName("Cache").Set(cache)
	}
	return opts
}
