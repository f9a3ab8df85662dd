package main

// The checks run inside the container (as /runtimetest): compare what the
// process sees with what /config.json asked for. Each check is one TAP line.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	rspec "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/syndtr/gocapability/capability"
)

type check struct {
	name string
	run  func(s *rspec.Spec) (skip string, err error)
}

func inside() int {
	t := &TAP{}
	defer t.Plan()
	data, err := os.ReadFile("/config.json")
	if err != nil {
		t.Fail("read /config.json", err.Error())
		return 1
	}
	var s rspec.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fail("parse /config.json", err.Error())
		return 1
	}
	if s.Process == nil {
		s.Process = &rspec.Process{}
	}
	if s.Linux == nil {
		s.Linux = &rspec.Linux{}
	}
	checks := []check{
		{"root filesystem", checkRootfs},
		{"hostname", checkHostname},
		{"mounts", checkMounts},
		{"default filesystems", checkDefaultFS},
		{"default devices", checkDefaultDevices},
		{"default symlinks", checkDefaultSymlinks},
		{"linux devices", checkDevices},
		{"process", checkProcess},
		{"capabilities", checkCapabilities},
		{"rlimits", checkRlimits},
		{"oom score adj", checkOOMScoreAdj},
		{"sysctls", checkSysctls},
		{"masked paths", checkMaskedPaths},
		{"readonly paths", checkReadonlyPaths},
		{"uid mappings", func(s *rspec.Spec) (string, error) {
			return checkIDMap(s.Linux.UIDMappings, "/proc/self/uid_map")
		}},
		{"gid mappings", func(s *rspec.Spec) (string, error) {
			return checkIDMap(s.Linux.GIDMappings, "/proc/self/gid_map")
		}},
		{"root propagation", checkRootPropagation},
		{"namespaces", checkNamespaces},
		{"seccomp", checkSeccomp},
		{"apparmor profile", checkApparmor},
	}
	failed := 0
	for _, c := range checks {
		skip, err := c.run(&s)
		switch {
		case err != nil:
			t.Fail(c.name, err.Error())
			failed++
		case skip != "":
			t.Skip(c.name, skip)
		default:
			t.Ok(true, c.name)
		}
	}
	if failed > 0 {
		return 1
	}
	return 0
}

func checkRootfs(s *rspec.Spec) (string, error) {
	if s.Root == nil {
		return "", nil
	}
	err := tryWrite("/")
	if s.Root.Readonly && err == nil {
		return "", fmt.Errorf("root.readonly is true but / is writable")
	}
	if !s.Root.Readonly && err != nil {
		return "", fmt.Errorf("root.readonly is false but / is not writable: %v", err)
	}
	return "", nil
}

// tryWrite creates and removes a file in dir (or writes to a file).
func tryWrite(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		return f.Close()
	}
	f, err := os.CreateTemp(path, ".ocitest-")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

func checkHostname(s *rspec.Spec) (string, error) {
	if s.Hostname == "" {
		return "no hostname in the config", nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", err
	}
	if h != s.Hostname {
		return "", fmt.Errorf("hostname is %q, want %q", h, s.Hostname)
	}
	return "", nil
}

type mountInfo struct {
	mountpoint, fstype, source string
	options, optional          []string
}

func mountinfo() ([]mountInfo, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mountInfo
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		sep := strings.Index(line, " - ")
		if sep < 0 {
			continue
		}
		pre := strings.Fields(line[:sep])
		post := strings.Fields(line[sep+3:])
		if len(pre) < 6 || len(post) < 2 {
			continue
		}
		out = append(out, mountInfo{
			mountpoint: unescape(pre[4]),
			options:    strings.Split(pre[5], ","),
			optional:   pre[6:],
			fstype:     post[0],
			source:     unescape(post[1]),
		})
	}
	return out, sc.Err()
}

func unescape(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

func hasOption(opts []string, o string) bool {
	for _, x := range opts {
		if x == o {
			return true
		}
	}
	return false
}

func checkMounts(s *rspec.Spec) (string, error) {
	mis, err := mountinfo()
	if err != nil {
		return "", err
	}
	for _, m := range s.Mounts {
		dest := filepath.Clean(m.Destination)
		bind := m.Type == "bind" || hasOption(m.Options, "bind") || hasOption(m.Options, "rbind")
		found := false
		for _, mi := range mis {
			if mi.mountpoint != dest {
				continue
			}
			switch {
			case bind:
				found = true
			case m.Type == "cgroup":
				// On cgroup v1 runtimes mount a tmpfs with one cgroup
				// mount per hierarchy under it.
				found = mi.fstype == "cgroup" || mi.fstype == "cgroup2" || mi.fstype == "tmpfs"
			default:
				found = mi.fstype == m.Type
			}
			if found {
				if hasOption(m.Options, "ro") && !hasOption(mi.options, "ro") {
					return "", fmt.Errorf("mount %s should be read-only (options %v)", dest, mi.options)
				}
				break
			}
		}
		if !found {
			return "", fmt.Errorf("mount %s (type %s) is missing", dest, m.Type)
		}
	}
	return "", nil
}

func checkDefaultFS(s *rspec.Spec) (string, error) {
	mis, err := mountinfo()
	if err != nil {
		return "", err
	}
	want := map[string]string{"/proc": "proc", "/sys": "sysfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs"}
	for dest, typ := range want {
		ok := false
		for _, mi := range mis {
			if mi.mountpoint == dest && mi.fstype == typ {
				ok = true
			}
		}
		if !ok {
			return "", fmt.Errorf("%s is not a %s mount", dest, typ)
		}
	}
	return "", nil
}

func checkDefaultDevices(s *rspec.Spec) (string, error) {
	devs := []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", "/dev/ptmx"}
	if s.Process.Terminal {
		devs = append(devs, "/dev/console")
	}
	for _, d := range devs {
		fi, err := os.Stat(d)
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeDevice == 0 {
			return "", fmt.Errorf("%s is not a device", d)
		}
	}
	return "", nil
}

func checkDefaultSymlinks(s *rspec.Spec) (string, error) {
	links := map[string]string{
		"/dev/fd":     "/proc/self/fd",
		"/dev/stdin":  "/proc/self/fd/0",
		"/dev/stdout": "/proc/self/fd/1",
		"/dev/stderr": "/proc/self/fd/2",
	}
	for l, dest := range links {
		got, err := os.Readlink(l)
		if err != nil {
			return "", err
		}
		if got != dest {
			return "", fmt.Errorf("%s points to %s, want %s", l, got, dest)
		}
	}
	return "", nil
}

func checkDevices(s *rspec.Spec) (string, error) {
	if len(s.Linux.Devices) == 0 {
		return "no linux.devices in the config", nil
	}
	for _, d := range s.Linux.Devices {
		fi, err := os.Stat(d.Path)
		if err != nil {
			return "", err
		}
		st := fi.Sys().(*syscall.Stat_t)
		var typ string
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFCHR:
			typ = "c"
		case syscall.S_IFBLK:
			typ = "b"
		case syscall.S_IFIFO:
			typ = "p"
		default:
			typ = "?"
		}
		want := d.Type
		if want == "u" {
			want = "c"
		}
		if typ != want {
			return "", fmt.Errorf("%s has type %s, want %s", d.Path, typ, d.Type)
		}
		if typ != "p" {
			major := int64((st.Rdev >> 8) & 0xfff)
			minor := int64((st.Rdev & 0xff) | ((st.Rdev >> 12) & 0xfff00))
			if major != d.Major || minor != d.Minor {
				return "", fmt.Errorf("%s is %d:%d, want %d:%d", d.Path, major, minor, d.Major, d.Minor)
			}
		}
		if d.FileMode != nil && fi.Mode().Perm() != d.FileMode.Perm() {
			return "", fmt.Errorf("%s has mode %v, want %v", d.Path, fi.Mode().Perm(), d.FileMode.Perm())
		}
		if d.UID != nil && st.Uid != *d.UID {
			return "", fmt.Errorf("%s has uid %d, want %d", d.Path, st.Uid, *d.UID)
		}
		if d.GID != nil && st.Gid != *d.GID {
			return "", fmt.Errorf("%s has gid %d, want %d", d.Path, st.Gid, *d.GID)
		}
	}
	return "", nil
}

func checkProcess(s *rspec.Spec) (string, error) {
	p := s.Process
	if p.Cwd != "" {
		cwd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		if cwd != p.Cwd {
			return "", fmt.Errorf("cwd is %s, want %s", cwd, p.Cwd)
		}
	}
	for _, e := range p.Env {
		kv := strings.SplitN(e, "=", 2)
		if len(kv) == 2 && os.Getenv(kv[0]) != kv[1] {
			return "", fmt.Errorf("env %s is %q, want %q", kv[0], os.Getenv(kv[0]), kv[1])
		}
	}
	if uint32(os.Getuid()) != p.User.UID || uint32(os.Geteuid()) != p.User.UID {
		return "", fmt.Errorf("uid is %d (euid %d), want %d", os.Getuid(), os.Geteuid(), p.User.UID)
	}
	if uint32(os.Getgid()) != p.User.GID || uint32(os.Getegid()) != p.User.GID {
		return "", fmt.Errorf("gid is %d (egid %d), want %d", os.Getgid(), os.Getegid(), p.User.GID)
	}
	groups, err := os.Getgroups()
	if err != nil {
		return "", err
	}
	have := map[int]bool{}
	for _, g := range groups {
		have[g] = true
	}
	for _, g := range p.User.AdditionalGids {
		if !have[int(g)] {
			return "", fmt.Errorf("supplementary groups are %v, want %v among them", groups, p.User.AdditionalGids)
		}
	}
	cmdline, err := os.ReadFile("/proc/self/cmdline")
	if err != nil {
		return "", err
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	wantArgs := p.Args
	if s.Annotations["ocitest/wrapped"] != "" {
		wantArgs = []string{"/runtimetest"} // a shell ran first, then exec'd us
	}
	if strings.Join(args, " ") != strings.Join(wantArgs, " ") {
		return "", fmt.Errorf("args are %q, want %q", args, p.Args)
	}
	nnp, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, 39 /* PR_GET_NO_NEW_PRIVS */, 0, 0)
	if errno != 0 {
		return "", errno
	}
	if (nnp == 1) != p.NoNewPrivileges {
		return "", fmt.Errorf("no_new_privs is %d, want %v", nnp, p.NoNewPrivileges)
	}
	return "", nil
}

func capSet(s *rspec.Spec, which string) map[string]bool {
	out := map[string]bool{}
	c := s.Process.Capabilities
	if c == nil {
		return out
	}
	var list []string
	switch which {
	case "CapBnd":
		list = c.Bounding
	case "CapEff":
		list = c.Effective
	case "CapInh":
		list = c.Inheritable
	case "CapPrm":
		list = c.Permitted
	case "CapAmb":
		list = c.Ambient
	}
	for _, n := range list {
		out[n] = true
	}
	return out
}

func checkCapabilities(s *rspec.Spec) (string, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "", err
	}
	last := capability.CAP_LAST_CAP
	var problems []string
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || !strings.HasPrefix(f[0], "Cap") {
			continue
		}
		set := strings.TrimSuffix(f[0], ":")
		bits, err := strconv.ParseUint(f[1], 16, 64)
		if err != nil {
			return "", err
		}
		want := capSet(s, set)
		for _, c := range capability.List() {
			if c > last {
				continue
			}
			name := "CAP_" + strings.ToUpper(c.String())
			got := bits&(1<<uint(c)) != 0
			if got != want[name] {
				problems = append(problems, fmt.Sprintf("%s %s: have %v, want %v", set, name, got, want[name]))
			}
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return "", fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return "", nil
}

var rlimitNumbers = map[string]int{
	"RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3,
	"RLIMIT_CORE": 4, "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7,
	"RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11,
	"RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}

func checkRlimits(s *rspec.Spec) (string, error) {
	if len(s.Process.Rlimits) == 0 {
		return "no rlimits in the config", nil
	}
	for _, r := range s.Process.Rlimits {
		n, ok := rlimitNumbers[r.Type]
		if !ok {
			return "", fmt.Errorf("unknown rlimit %s", r.Type)
		}
		var rl syscall.Rlimit
		if err := syscall.Getrlimit(n, &rl); err != nil {
			return "", err
		}
		if r.Type == "RLIMIT_NOFILE" && s.Annotations["ocitest/wrapped"] != "" {
			// Go raises its soft NOFILE limit to the hard one at
			// start-up: the shell that exec'd us wrote down the original.
			b, err := os.ReadFile("/tmp/ocitest-nofile")
			if err != nil {
				return "", err
			}
			rl.Cur, _ = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		}
		if rl.Cur != r.Soft || rl.Max != r.Hard {
			return "", fmt.Errorf("%s is %d/%d, want %d/%d", r.Type, rl.Cur, rl.Max, r.Soft, r.Hard)
		}
	}
	return "", nil
}

func checkOOMScoreAdj(s *rspec.Spec) (string, error) {
	if s.Process.OOMScoreAdj == nil {
		return "no oomScoreAdj in the config", nil
	}
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return "", err
	}
	got, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return "", err
	}
	if got != *s.Process.OOMScoreAdj {
		return "", fmt.Errorf("oom_score_adj is %d, want %d", got, *s.Process.OOMScoreAdj)
	}
	return "", nil
}

func checkSysctls(s *rspec.Spec) (string, error) {
	if len(s.Linux.Sysctl) == 0 {
		return "no sysctls in the config", nil
	}
	for k, v := range s.Linux.Sysctl {
		b, err := os.ReadFile(filepath.Join("/proc/sys", strings.ReplaceAll(k, ".", "/")))
		if err != nil {
			return "", err
		}
		// The kernel separates multi-value sysctls with tabs.
		if got := strings.Join(strings.Fields(string(b)), " "); got != strings.Join(strings.Fields(v), " ") {
			return "", fmt.Errorf("sysctl %s is %q, want %q", k, got, v)
		}
	}
	return "", nil
}

func checkMaskedPaths(s *rspec.Spec) (string, error) {
	if len(s.Linux.MaskedPaths) == 0 {
		return "no maskedPaths in the config", nil
	}
	for _, p := range s.Linux.MaskedPaths {
		fi, err := os.Stat(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return "", err
		}
		if fi.IsDir() {
			entries, err := os.ReadDir(p)
			if err != nil {
				return "", err
			}
			if len(entries) > 0 {
				return "", fmt.Errorf("masked directory %s is not empty", p)
			}
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			return "", err
		}
		n, err := f.Read(make([]byte, 1))
		f.Close()
		if n != 0 || err != io.EOF {
			return "", fmt.Errorf("masked file %s is readable", p)
		}
	}
	return "", nil
}

func checkReadonlyPaths(s *rspec.Spec) (string, error) {
	if len(s.Linux.ReadonlyPaths) == 0 {
		return "no readonlyPaths in the config", nil
	}
	for _, p := range s.Linux.ReadonlyPaths {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			continue
		}
		if err := tryWrite(p); err == nil {
			return "", fmt.Errorf("%s is writable", p)
		}
	}
	return "", nil
}

func checkIDMap(want []rspec.LinuxIDMapping, path string) (string, error) {
	if len(want) == 0 {
		return "no mappings in the config", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var have []rspec.LinuxIDMapping
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		c, _ := strconv.ParseUint(f[0], 10, 32)
		h, _ := strconv.ParseUint(f[1], 10, 32)
		n, _ := strconv.ParseUint(f[2], 10, 32)
		have = append(have, rspec.LinuxIDMapping{ContainerID: uint32(c), HostID: uint32(h), Size: uint32(n)})
	}
	if len(have) != len(want) {
		return "", fmt.Errorf("%s has %v, want %v", path, have, want)
	}
	for _, w := range want {
		found := false
		for _, h := range have {
			if h == w {
				found = true
			}
		}
		if !found {
			return "", fmt.Errorf("%s has %v, want %v", path, have, want)
		}
	}
	return "", nil
}

func checkRootPropagation(s *rspec.Spec) (string, error) {
	prop := s.Linux.RootfsPropagation
	if prop == "" {
		return "no rootfsPropagation in the config", nil
	}
	mis, err := mountinfo()
	if err != nil {
		return "", err
	}
	var fields []string
	for _, mi := range mis {
		if mi.mountpoint == "/" {
			fields = mi.optional
		}
	}
	if strings.TrimPrefix(prop, "r") == "unbindable" {
		// Binding an unbindable mount fails with EINVAL.
		if err := os.MkdirAll("/ocitest-bind", 0o755); err != nil {
			return "", err
		}
		err := syscall.Mount("/", "/ocitest-bind", "", syscall.MS_BIND|syscall.MS_REC, "")
		if err == nil {
			_ = syscall.Unmount("/ocitest-bind", syscall.MNT_DETACH)
			return "", fmt.Errorf("/ could be bind-mounted, so it is not unbindable (fields %v)", fields)
		}
		if err != syscall.EINVAL {
			return "", fmt.Errorf("bind-mounting /: %v (want EINVAL)", err)
		}
		return "", nil
	}
	// As runtime-tools' runtimetest does: bind / to a directory, mount a
	// tmpfs under /, and see whether it appears in the copy too (it does
	// when / is shared: the copy is its peer).
	for _, d := range []string{"/ocitest-copy", "/ocitest-target"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	if err := syscall.Mount("/", "/ocitest-copy", "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return "", fmt.Errorf("bind-mounting / (the test needs CAP_SYS_ADMIN): %v", err)
	}
	defer syscall.Unmount("/ocitest-copy", syscall.MNT_DETACH)
	if err := syscall.Mount("tmpfs", "/ocitest-target", "tmpfs", 0, "size=64k"); err != nil {
		return "", fmt.Errorf("mounting a tmpfs: %v", err)
	}
	defer syscall.Unmount("/ocitest-target", syscall.MNT_DETACH)
	var st syscall.Statfs_t
	if err := syscall.Statfs("/ocitest-copy/ocitest-target", &st); err != nil {
		return "", err
	}
	const tmpfsMagic = 0x01021994
	propagated := st.Type == tmpfsMagic
	switch strings.TrimPrefix(prop, "r") {
	case "shared":
		if !propagated {
			return "", fmt.Errorf("a mount under / did not propagate to a bind copy of it, so / is not shared (fields %v)", fields)
		}
	case "slave", "private":
		if propagated {
			return "", fmt.Errorf("a mount under / propagated to a bind copy of it, so / is shared, not %s (fields %v)", prop, fields)
		}
	default:
		return "", fmt.Errorf("unknown propagation %q", prop)
	}
	return "", nil
}

// checkNamespaces compares /proc/self/ns/* with the annotations the outer
// test set: "ocitest/ns.<type>" = "same:<link>" or "differ:<link>".
func checkNamespaces(s *rspec.Spec) (string, error) {
	n := 0
	for k, v := range s.Annotations {
		if !strings.HasPrefix(k, "ocitest/ns.") {
			continue
		}
		n++
		file := strings.TrimPrefix(k, "ocitest/ns.")
		got, err := os.Readlink("/proc/self/ns/" + file)
		if err != nil {
			return "", err
		}
		parts := strings.SplitN(v, ":", 2)
		if len(parts) != 2 {
			return "", fmt.Errorf("bad annotation %s=%s", k, v)
		}
		same := got == parts[1]
		if parts[0] == "same" && !same {
			return "", fmt.Errorf("%s namespace is %s, want %s (the given one)", file, got, parts[1])
		}
		if parts[0] == "differ" && same {
			return "", fmt.Errorf("%s namespace is the runtime's own %s, want a new one", file, got)
		}
	}
	if n == 0 {
		return "no namespace expectations", nil
	}
	return "", nil
}

// checkSeccomp: a config that makes getppid fail with an errno must see it.
func checkSeccomp(s *rspec.Spec) (string, error) {
	if s.Linux.Seccomp == nil {
		return "no seccomp in the config", nil
	}
	for _, sc := range s.Linux.Seccomp.Syscalls {
		for _, name := range sc.Names {
			if name != "getppid" || sc.Action != rspec.ActErrno {
				continue
			}
			_, _, errno := syscall.RawSyscall(syscall.SYS_GETPPID, 0, 0, 0)
			want := syscall.EPERM
			if sc.ErrnoRet != nil {
				want = syscall.Errno(*sc.ErrnoRet)
			}
			if errno != want {
				return "", fmt.Errorf("getppid returned errno %d, want %d", errno, want)
			}
			return "", nil
		}
	}
	return "no getppid rule in the profile", nil
}

func checkApparmor(s *rspec.Spec) (string, error) {
	if s.Process.ApparmorProfile == "" {
		return "no apparmorProfile in the config", nil
	}
	b, err := os.ReadFile("/proc/self/attr/current")
	if err != nil {
		return "", err
	}
	got := strings.TrimSpace(string(b))
	if !strings.HasPrefix(got, s.Process.ApparmorProfile) {
		return "", fmt.Errorf("apparmor profile is %q, want %q", got, s.Process.ApparmorProfile)
	}
	return "", nil
}
