// Command probeconf-harness is the Go half of probeconf: it loads and attaches
// the recorder programs with cilium/ebpf on behalf of the Rust runner, which
// drives it over stdin/stdout (PROTOCOL.md).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"probeconf/go-harness/compat"
	"probeconf/go-harness/internal/buildinfo"
	"probeconf/go-harness/internal/harness"
	"probeconf/go-harness/internal/protocol"
)

const usage = `usage: probeconf-harness run|gaps|version

  run      one case over stdin/stdout (JSON lines, see PROTOCOL.md)
  gaps     the Go side of the compatibility registry, as a JSON array
  version  protocol, library and Go versions, as a JSON object
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) (status int) {
	// A panic must end as an error line the runner can parse, not a trace on
	// stdout's reader's doorstep.
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "panic: %v\n%s", r, debug.Stack())
			_ = json.NewEncoder(stdout).Encode(protocol.ErrorLine{
				Type: "error", Phase: protocol.PhaseProtocol, Class: "other",
				Detail: fmt.Sprintf("internal error (panic): %v", r),
			})
			status = 1
		}
	}()

	if len(args) != 1 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		ctx, cancel := context.WithCancelCause(context.Background())
		defer cancel(nil)
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
		defer signal.Stop(sigs)
		go func() {
			if sig, ok := <-sigs; ok {
				cancel(fmt.Errorf("received %v", sig))
			}
		}()
		return harness.Run(ctx, harness.Config{In: stdin, Out: stdout, Log: stderr})
	case "gaps":
		return printJSON(stdout, stderr, compat.Registry)
	case "version":
		return printJSON(stdout, stderr, buildinfo.Version())
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "unknown subcommand %q\n%s", args[0], usage)
		return 2
	}
}

// printJSON writes v as one line, so a runner may read it line-wise too.
func printJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(stderr, "write: %v\n", err)
		return 1
	}
	return 0
}
