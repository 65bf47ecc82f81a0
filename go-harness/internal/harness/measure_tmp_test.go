package harness

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"probeconf/go-harness/internal/protocol"
	"probeconf/go-harness/internal/testutil"
)

func TestMeasureTmp(t *testing.T) {
	object := testutil.RequireObject(t)
	dir := t.TempDir()
	txt := filepath.Join(dir, "not-elf.txt")
	os.WriteFile(txt, []byte("hello, not an ELF file\n"), 0o644)
	for _, bin := range []string{dir, txt, filepath.Join(dir, "nope")} {
		for _, k := range []protocol.Kind{protocol.KindUprobe, protocol.KindUprobeMulti, protocol.KindUprobeSession} {
			for _, tg := range []protocol.Target{{Symbol: "pc_leaf"}, {Offset: 4}} {
				prog := map[protocol.Kind]string{protocol.KindUprobe: "pc_uprobe", protocol.KindUprobeMulti: "pc_uprobe_multi", protocol.KindUprobeSession: "pc_uprobe_session"}[k]
				req := protocol.Request{Protocol: 1, Object: object, Probes: []protocol.Probe{{
					Name: "up", Program: prog, Kind: k, Binary: bin, Targets: []protocol.Target{tg},
				}}}
				c := startSession(t, context.Background())
				c.recv("hello", nil)
				c.sendJSON(req)
				line, _ := c.out.ReadBytes('\n')
				t.Logf("%s %s %+v: %s", filepath.Base(bin), k, tg, line)
				c.in.Close()
				c.wait()
			}
		}
	}
}
