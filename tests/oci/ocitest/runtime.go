package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	rspec "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-tools/generate"
)

// How long one runtime command may take before it counts as hung.
const commandTimeout = 30 * time.Second

// Runtime drives one container of the runtime under test.
type Runtime struct {
	Command string
	Root    string // --root, if set
	Bundle  string
	ID      string
	PidFile string
	// The container's stdio (inherited from `create`).
	stdout, stderr string
}

// CmdError is a runtime command that failed; it keeps what it printed.
type CmdError struct {
	Args   []string
	Err    error
	Output string
}

func (e *CmdError) Error() string {
	return fmt.Sprintf("%s: %v: %s", strings.Join(e.Args, " "), e.Err, strings.TrimSpace(e.Output))
}

func runtimeCommand() string {
	if r := os.Getenv("RUNTIME"); r != "" {
		return r
	}
	return "runc"
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "ocitest-" + hex.EncodeToString(b)
}

// NewBundle makes a bundle whose root is the bundle directory itself (as
// runtime-tools does: root.path "."), holding busybox and /runtimetest.
func NewBundle() (*Runtime, error) {
	rootfs := os.Getenv("OCITEST_ROOTFS")
	if rootfs == "" {
		return nil, errors.New("OCITEST_ROOTFS is not set")
	}
	dir, err := os.MkdirTemp(os.Getenv("OCITEST_WORK"), "bundle-")
	if err != nil {
		return nil, err
	}
	if out, err := exec.Command("cp", "-a", rootfs+"/.", dir).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("copying the rootfs: %v: %s", err, out)
	}
	return &Runtime{
		Command: runtimeCommand(),
		Root:    os.Getenv("OCITEST_STATE"),
		Bundle:  dir,
		ID:      newID(),
	}, nil
}

// DefaultGenerator is runtime-tools' default Linux config with the bundle
// as root and /runtimetest as the process.
func DefaultGenerator() *generate.Generator {
	g, err := generate.New("linux")
	if err != nil {
		panic(err)
	}
	g.SetRootPath(".")
	g.SetProcessArgs([]string{"/runtimetest"})
	return &g
}

// SetConfig writes config.json.
func (r *Runtime) SetConfig(g *generate.Generator) error {
	return g.SaveToFile(filepath.Join(r.Bundle, "config.json"), generate.ExportOptions{})
}

func (r *Runtime) command(ctx context.Context, args ...string) *exec.Cmd {
	var full []string
	if r.Root != "" {
		full = append(full, "--root", r.Root)
	}
	full = append(full, args...)
	return exec.CommandContext(ctx, r.Command, full...)
}

// Run runs one runtime command and returns its stdout.
func (r *Runtime) Run(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := r.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v", commandTimeout)
	}
	if err != nil {
		out := stderr.String()
		if out == "" {
			out = stdout.String()
		}
		return stdout.Bytes(), &CmdError{Args: append([]string{filepath.Base(r.Command)}, args...), Err: err, Output: out}
	}
	return stdout.Bytes(), nil
}

// Create runs `create`; the container's stdio are files in the bundle's
// parent directory (so the container cannot see them).
func (r *Runtime) Create() error {
	args := []string{"create", "--bundle", r.Bundle}
	if r.PidFile != "" {
		args = append(args, "--pid-file", r.PidFile)
	}
	if r.ID != "" {
		args = append(args, r.ID)
	}
	base := r.Bundle + ".stdio-" + newID()
	r.stdout, r.stderr = base+".out", base+".err"
	out, err := os.Create(r.stdout)
	if err != nil {
		return err
	}
	defer out.Close()
	errf, err := os.Create(r.stderr)
	if err != nil {
		return err
	}
	defer errf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := r.command(ctx, args...)
	cmd.Stdout = out
	cmd.Stderr = errf
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v", commandTimeout)
	}
	if err != nil {
		_, stderr := r.Output()
		return &CmdError{Args: append([]string{filepath.Base(r.Command)}, args...), Err: err, Output: stderr}
	}
	return nil
}

// Output is what the container (and `create`) wrote so far.
func (r *Runtime) Output() (stdout, stderr string) {
	o, _ := os.ReadFile(r.stdout)
	e, _ := os.ReadFile(r.stderr)
	return string(o), string(e)
}

func (r *Runtime) Start() error {
	_, err := r.Run("start", r.ID)
	return err
}

func (r *Runtime) Kill(sig string) error {
	_, err := r.Run("kill", r.ID, sig)
	return err
}

func (r *Runtime) Delete() error {
	_, err := r.Run("delete", r.ID)
	return err
}

func (r *Runtime) ForceDelete() error {
	_, err := r.Run("delete", "--force", r.ID)
	return err
}

// State runs `state` and parses it.
func (r *Runtime) State() (rspec.State, error) {
	var st rspec.State
	out, err := r.Run("state", r.ID)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return st, fmt.Errorf("state is not the OCI state JSON: %v: %s", err, out)
	}
	return st, nil
}

// WaitFor polls `state` until the status is one of want.
func (r *Runtime) WaitFor(timeout time.Duration, want ...rspec.ContainerState) (rspec.State, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := r.State()
		if err != nil {
			return st, err
		}
		for _, w := range want {
			if st.Status == w {
				return st, nil
			}
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("status is %q after %v, wanted %v", st.Status, timeout, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Clean kills and removes the container, its bundle and stdio files.
func (r *Runtime) Clean() {
	if _, err := r.State(); err == nil {
		_ = r.Kill("KILL")
		_, _ = r.WaitFor(5*time.Second, rspec.StateStopped)
		if err := r.ForceDelete(); err != nil {
			fmt.Fprintf(os.Stderr, "cleaning up %s: %v\n", r.ID, err)
		}
	}
	unmountUnder(r.Bundle)
	os.RemoveAll(r.Bundle)
	if r.stdout != "" {
		os.Remove(r.stdout)
		os.Remove(r.stderr)
	}
}

// Inside runs /runtimetest in a container made from g and folds the TAP it
// prints into t, each line prefixed with label.
func Inside(t *TAP, label string, g *generate.Generator, prepare func(r *Runtime) error) error {
	r, err := NewBundle()
	if err != nil {
		return err
	}
	defer r.Clean()
	if prepare != nil {
		if err := prepare(r); err != nil {
			return err
		}
	}
	if err := r.SetConfig(g); err != nil {
		return err
	}
	if err := r.Create(); err != nil {
		t.Fail(label+"create", err.Error())
		return nil
	}
	if err := r.Start(); err != nil {
		t.Fail(label+"start", err.Error())
		return nil
	}
	if _, err := r.WaitFor(10*time.Second, rspec.StateStopped); err != nil {
		t.Fail(label+"the container stops", err.Error())
		return nil
	}
	stdout, stderr := r.Output()
	foldTAP(t, label, stdout, stderr)
	return nil
}

// foldTAP re-emits the results of an inner TAP stream.
func foldTAP(t *TAP, label, stdout, stderr string) {
	seen := 0
	var last *string
	var diag []string
	flush := func() {
		if last == nil {
			return
		}
		line := *last
		switch {
		case strings.HasPrefix(line, "not ok"):
			t.Fail(label+tapDesc(line), diag...)
		case strings.Contains(line, "# SKIP"):
			i := strings.Index(line, "# SKIP")
			t.Skip(label+tapDesc(line[:i]), strings.TrimSpace(line[i+6:]))
		default:
			t.Ok(true, label+tapDesc(line))
		}
		last, diag = nil, nil
	}
	for _, line := range strings.Split(stdout, "\n") {
		switch {
		case strings.HasPrefix(line, "ok ") || strings.HasPrefix(line, "not ok "):
			flush()
			l := line
			last = &l
			seen++
		case strings.HasPrefix(line, "# "):
			diag = append(diag, line[2:])
		}
	}
	flush()
	if seen == 0 {
		t.Fail(label+"runtimetest ran in the container and reported", "stdout: "+stdout, "stderr: "+stderr)
	}
}

// tapDesc is the description of "ok 3 - desc".
func tapDesc(line string) string {
	if i := strings.Index(line, " - "); i >= 0 {
		return strings.TrimSpace(line[i+3:])
	}
	return strings.TrimSpace(line)
}

// errText is err's message, or "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// unmountUnder detaches whatever is mounted under dir in our mount
// namespace: with rootfsPropagation "shared" a container's mounts show up
// under its bundle on the host too, and removing the bundle must not walk
// into them.
func unmountUnder(dir string) {
	mis, err := mountinfo()
	if err != nil {
		return
	}
	for i := len(mis) - 1; i >= 0; i-- {
		mp := mis[i].mountpoint
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			_ = syscall.Unmount(mp, syscall.MNT_DETACH)
		}
	}
}
