// Command ocitest is Berth's OCI runtime conformance suite: it drives an
// OCI runtime through runc's command line (create, start, state, kill,
// delete) the way opencontainers/runtime-tools' validation programs do, and
// prints TAP. The test cases carry the names of the runtime-tools
// validation programs whose ground they cover, so results can be compared
// with that suite's; the code is Berth's own (runtime-tools' validation/
// and cmd/runtimetest are not packaged by Debian), built on the packages
// Debian does ship: runtime-spec's Go types and runtime-tools' config
// generator.
//
// Usage (tests/oci/run.sh sets all of this up):
//
//	ocitest list                 names of the test cases
//	ocitest run NAME             run one case, TAP on stdout
//	runtimetest                  (as /runtimetest in a container) check the
//	                             container against /config.json, TAP out
//
// Environment of `run`: RUNTIME (the runtime binary), OCITEST_ROOTFS (a
// directory with busybox and this binary as /runtimetest, copied into every
// bundle), OCITEST_STATE (passed as the runtime's --root, so the suite's
// containers stay apart from any others), OCITEST_WORK (where bundles go),
// OCITEST_CGROUP (the parent cgroup of the containers' cgroups).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

var cases = map[string]func(t *TAP) error{}

func register(name string, f func(t *TAP) error) {
	if _, dup := cases[name]; dup {
		panic("duplicate test " + name)
	}
	cases[name] = f
}

func main() {
	if filepath.Base(os.Args[0]) == "runtimetest" {
		os.Exit(inside())
	}
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: ocitest list | ocitest run NAME")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "list":
		var names []string
		for n := range cases {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Println(strings.Join(names, "\n"))
	case "run":
		if len(os.Args) != 3 {
			fmt.Fprintln(os.Stderr, "usage: ocitest run NAME")
			os.Exit(2)
		}
		f, ok := cases[os.Args[2]]
		if !ok {
			fmt.Fprintf(os.Stderr, "no test %q; see `ocitest list`\n", os.Args[2])
			os.Exit(2)
		}
		t := &TAP{}
		if err := f(t); err != nil {
			t.Fail("test aborted: " + err.Error())
		}
		t.Plan()
	case "inside":
		os.Exit(inside())
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

// TAP writes test results in the Test Anything Protocol, version 13.
type TAP struct{ n int }

// Ok records one result.
func (t *TAP) Ok(ok bool, desc string, diag ...string) {
	t.n++
	status := "ok"
	if !ok {
		status = "not ok"
	}
	fmt.Printf("%s %d - %s\n", status, t.n, oneLine(desc))
	if !ok {
		t.diag(diag)
	}
}

// Fail records a failure.
func (t *TAP) Fail(desc string, diag ...string) { t.Ok(false, desc, diag...) }

// Skip records a skipped check.
func (t *TAP) Skip(desc, why string) {
	t.n++
	fmt.Printf("ok %d - %s # SKIP %s\n", t.n, oneLine(desc), oneLine(why))
}

// Plan closes the stream.
func (t *TAP) Plan() { fmt.Printf("1..%d\n", t.n) }

func (t *TAP) diag(lines []string) {
	for _, d := range lines {
		for _, l := range strings.Split(strings.TrimRight(d, "\n"), "\n") {
			if l != "" {
				fmt.Printf("# %s\n", l)
			}
		}
	}
}

func oneLine(s string) string {
	return strings.ReplaceAll(strings.TrimSpace(s), "\n", " ")
}
