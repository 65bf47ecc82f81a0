package main

import (
	"bytes"
	"os"
	"testing"
)

// TestCommittedTableIsFresh fails when errno_table.go is not what the TSV
// generates: run `go generate` in go-harness/internal/classify.
func TestCommittedTableIsFresh(t *testing.T) {
	tsv, err := os.ReadFile("../../../../bpf/errno-classes.tsv")
	if err != nil {
		t.Fatalf("the errno table's source: %v (this test runs in the probeconf repository)", err)
	}
	want, err := Render(tsv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../errno_table.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("internal/classify/errno_table.go is stale: run `go generate` in go-harness/internal/classify")
	}
}

func TestParseRefusesBadRows(t *testing.T) {
	for _, tsv := range []string{
		"EINVAL\t\tinvalid\n",                          // 3 columns
		"EINVAL\t\tbogus\twhy\n",                       // unknown class
		"X\tabc\tinvalid\twhy\n",                       // bad number
		"EINVAL\t\tinvalid\ta\nEINVAL\t\tinvalid\tb\n", // duplicate
	} {
		if _, err := Parse([]byte(tsv)); err == nil {
			t.Errorf("Parse(%q) accepted", tsv)
		}
	}
}
