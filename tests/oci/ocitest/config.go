package main

// Config tests: run /runtimetest in a container made from a config that
// exercises one part of config.md / config-linux.md; it checks from inside.

import (
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

func inside1(g *generate.Generator, prepare func(r *Runtime) error) func(t *TAP) error {
	return func(t *TAP) error { return Inside(t, "", g, prepare) }
}

func u32(v uint32) *uint32 { return &v }

func init() {
	register("default", func(t *TAP) error { return Inside(t, "", DefaultGenerator(), nil) })
	register("hostname", func(t *TAP) error {
		g := DefaultGenerator()
		g.SetHostname("berth-ocitest")
		return Inside(t, "", g, nil)
	})
	register("mounts", func(t *TAP) error {
		g := DefaultGenerator()
		g.AddMount(rspec.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup",
			Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}})
		g.AddMount(rspec.Mount{Destination: "/ocitest-tmpfs", Type: "tmpfs", Source: "tmpfs",
			Options: []string{"nosuid", "nodev", "size=1m", "mode=755"}})
		g.AddMount(rspec.Mount{Destination: "/ocitest-ro", Type: "tmpfs", Source: "tmpfs",
			Options: []string{"ro", "size=1m"}})
		var host string
		return Inside(t, "", g, func(r *Runtime) error {
			host = r.Bundle + ".bindsrc"
			if err := os.MkdirAll(host, 0o755); err != nil {
				return err
			}
			g.AddMount(rspec.Mount{Destination: "/ocitest-bind", Type: "bind", Source: host,
				Options: []string{"rbind", "ro"}})
			return nil
		})
	})
	register("process", func(t *TAP) error {
		g := DefaultGenerator()
		g.SetProcessArgs([]string{"/runtimetest", "an argument", "--x=y"})
		g.SetProcessCwd("/tmp")
		g.AddProcessEnv("OCITEST_VAR", "a value=with an equals sign")
		return Inside(t, "", g, nil)
	})
	register("process_user", func(t *TAP) error {
		g := DefaultGenerator()
		g.SetProcessUID(1000)
		g.SetProcessGID(1000)
		g.AddProcessAdditionalGid(1001)
		g.AddProcessAdditionalGid(1002)
		return Inside(t, "", g, nil)
	})
	register("process_capabilities", func(t *TAP) error {
		g := DefaultGenerator()
		g.Config.Process.Capabilities = &rspec.LinuxCapabilities{
			// As root, exec makes permitted = inheritable | bounding and
			// effective = permitted, so only such sets can hold.
			Bounding:    []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"},
			Permitted:   []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"},
			Effective:   []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"},
			Inheritable: []string{"CAP_KILL", "CAP_NET_BIND_SERVICE"},
			Ambient:     []string{"CAP_KILL"},
		}
		return Inside(t, "", g, nil)
	})
	register("process_oom_score_adj", func(t *TAP) error {
		g := DefaultGenerator()
		g.SetProcessOOMScoreAdj(500)
		return Inside(t, "", g, nil)
	})
	register("process_rlimits", func(t *TAP) error {
		g := DefaultGenerator()
		g.Config.Process.Rlimits = []rspec.POSIXRlimit{
			{Type: "RLIMIT_NOFILE", Hard: 1000, Soft: 900},
			{Type: "RLIMIT_CORE", Hard: 4096, Soft: 1024},
			{Type: "RLIMIT_NPROC", Hard: 5000, Soft: 4000},
		}
		// Go raises its own soft NOFILE limit at start-up, so a shell
		// writes down what the runtime set before it runs the checks.
		sh(g, "ulimit -Sn > /tmp/ocitest-nofile; exec /runtimetest")
		g.AddAnnotation("ocitest/wrapped", "1")
		return Inside(t, "", g, nil)
	})
	register("process_no_new_privileges", func(t *TAP) error {
		for _, b := range []bool{true, false} {
			g := DefaultGenerator()
			g.SetProcessNoNewPrivileges(b)
			if err := Inside(t, fmt.Sprintf("noNewPrivileges=%v: ", b), g, nil); err != nil {
				return err
			}
		}
		return nil
	})
	register("root_readonly_true", func(t *TAP) error {
		g := DefaultGenerator()
		g.SetRootReadonly(true)
		return Inside(t, "", g, nil)
	})
	register("root_readonly_false", func(t *TAP) error {
		g := DefaultGenerator()
		g.SetRootReadonly(false)
		return Inside(t, "", g, nil)
	})
	register("linux_devices", func(t *TAP) error {
		g := DefaultGenerator()
		mode := os.FileMode(0o640)
		g.Config.Linux.Devices = []rspec.LinuxDevice{
			{Path: "/dev/ocitest-char", Type: "c", Major: 1, Minor: 3, FileMode: &mode, UID: u32(1000), GID: u32(1001)},
			{Path: "/dev/ocitest-block", Type: "b", Major: 7, Minor: 0, FileMode: &mode, UID: u32(0), GID: u32(0)},
			{Path: "/dev/ocitest-fifo", Type: "p", FileMode: &mode},
		}
		return Inside(t, "", g, nil)
	})
	register("linux_masked_paths", func(t *TAP) error {
		g := DefaultGenerator()
		for _, p := range []string{"/masked-dir", "/masked-file", "/masked-missing", "/proc/kcore", "/proc/timer_list", "/sys/firmware"} {
			g.AddLinuxMaskedPaths(p)
		}
		return Inside(t, "", g, func(r *Runtime) error {
			if err := os.MkdirAll(filepath.Join(r.Bundle, "masked-dir"), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(r.Bundle, "masked-dir", "secret"), []byte("secret"), 0o644); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(r.Bundle, "masked-file"), []byte("secret"), 0o644)
		})
	})
	register("linux_readonly_paths", func(t *TAP) error {
		g := DefaultGenerator()
		for _, p := range []string{"/ro-dir", "/ro-file", "/ro-missing", "/proc/sys", "/proc/sysrq-trigger"} {
			g.AddLinuxReadonlyPaths(p)
		}
		return Inside(t, "", g, func(r *Runtime) error {
			if err := os.MkdirAll(filepath.Join(r.Bundle, "ro-dir"), 0o777); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(r.Bundle, "ro-file"), []byte("x"), 0o666)
		})
	})
	register("linux_rootfs_propagation", func(t *TAP) error {
		for _, p := range []string{"shared", "slave", "private", "unbindable"} {
			g := DefaultGenerator()
			// The check mounts things, as runtime-tools' does.
			addCap(g, "CAP_SYS_ADMIN")
			g.Config.Linux.Seccomp = nil // the default profile forbids mount
			if err := g.SetLinuxRootPropagation(p); err != nil {
				return err
			}
			if err := Inside(t, p+": ", g, nil); err != nil {
				return err
			}
		}
		return nil
	})
	register("linux_sysctl", func(t *TAP) error {
		g := DefaultGenerator()
		g.AddLinuxSysctl("net.ipv4.ip_forward", "1")
		g.AddLinuxSysctl("net.ipv4.ping_group_range", "0 2147483647")
		g.AddLinuxSysctl("kernel.msgmax", "4096")
		return Inside(t, "", g, nil)
	})
	register("linux_uid_gid_mappings", func(t *TAP) error {
		g := DefaultGenerator()
		g.AddOrReplaceLinuxNamespace(string(rspec.UserNamespace), "")
		g.AddLinuxUIDMapping(100000, 0, 65536)
		g.AddLinuxGIDMapping(100000, 0, 65536)
		return Inside(t, "", g, func(r *Runtime) error {
			out, err := exec.Command("chown", "-R", "100000:100000", r.Bundle).CombinedOutput()
			if err != nil {
				return fmt.Errorf("chown: %v: %s", err, out)
			}
			return nil
		})
	})
	register("linux_seccomp", func(t *TAP) error {
		g := DefaultGenerator()
		eperm := uint(syscall.EPERM)
		g.Config.Linux.Seccomp = &rspec.LinuxSeccomp{
			DefaultAction: rspec.ActAllow,
			Syscalls: []rspec.LinuxSyscall{
				{Names: []string{"getppid"}, Action: rspec.ActErrno, ErrnoRet: &eperm},
			},
		}
		return Inside(t, "", g, nil)
	})
	register("linux_process_apparmor_profile", func(t *TAP) error {
		b, _ := os.ReadFile("/sys/module/apparmor/parameters/enabled")
		if strings.TrimSpace(string(b)) != "Y" {
			t.Skip("apparmor profile", "AppArmor is not enabled on this machine")
			return nil
		}
		g := DefaultGenerator()
		g.SetProcessApparmorProfile("unconfined")
		return Inside(t, "", g, nil)
	})
	register("linux_ns_nopath", func(t *TAP) error {
		g := DefaultGenerator()
		for _, ns := range []string{"net", "uts", "ipc", "pid", "mnt"} {
			link, err := os.Readlink("/proc/self/ns/" + ns)
			if err != nil {
				return err
			}
			g.AddAnnotation("ocitest/ns."+ns, "differ:"+link)
		}
		return Inside(t, "", g, nil)
	})
	register("linux_ns_itype", func(t *TAP) error {
		g := DefaultGenerator()
		for ns, typ := range map[string]rspec.LinuxNamespaceType{"net": rspec.NetworkNamespace, "uts": rspec.UTSNamespace, "ipc": rspec.IPCNamespace} {
			removeNamespace(g.Config, typ)
			link, err := os.Readlink("/proc/self/ns/" + ns)
			if err != nil {
				return err
			}
			g.AddAnnotation("ocitest/ns."+ns, "same:"+link)
		}
		// Without a UTS namespace of its own the container must not set
		// the host's hostname.
		g.RemoveHostname()
		return Inside(t, "", g, nil)
	})
	register("linux_ns_path", func(t *TAP) error {
		holder, err := startNamespaceHolder("--net", "--uts", "--ipc")
		if err != nil {
			return err
		}
		defer holder.stop()
		g := DefaultGenerator()
		for ns, typ := range map[string]rspec.LinuxNamespaceType{"net": rspec.NetworkNamespace, "uts": rspec.UTSNamespace, "ipc": rspec.IPCNamespace} {
			setNamespace(g.Config, typ, holder.nsPath(ns))
			link, err := os.Readlink(holder.nsPath(ns))
			if err != nil {
				return err
			}
			g.AddAnnotation("ocitest/ns."+ns, "same:"+link)
		}
		return Inside(t, "", g, nil)
	})
}

// nsHolder is a process sitting in namespaces of its own, for containers
// to join.
type nsHolder struct{ cmd *exec.Cmd }

func startNamespaceHolder(flags ...string) (*nsHolder, error) {
	cmd := exec.Command("unshare", append(flags, "sleep", "600")...)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("unshare: %v", err)
	}
	h := &nsHolder{cmd}
	// Wait until unshare has exec'd sleep in the new namespaces.
	self, _ := os.Readlink("/proc/self/ns/net")
	for i := 0; i < 200; i++ {
		link, _ := os.Readlink(h.nsPath("net"))
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid))
		if link != self && strings.TrimSpace(string(comm)) == "sleep" {
			return h, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.stop()
	return nil, fmt.Errorf("unshare did not set up its namespaces")
}

func (h *nsHolder) nsPath(ns string) string {
	return fmt.Sprintf("/proc/%d/ns/%s", h.cmd.Process.Pid, ns)
}

func (h *nsHolder) alive() bool {
	return h.cmd.Process.Signal(syscall.Signal(0)) == nil
}

func (h *nsHolder) stop() {
	_ = h.cmd.Process.Kill()
	_ = h.cmd.Wait()
}

func addCap(g *generate.Generator, c string) {
	caps := g.Config.Process.Capabilities
	caps.Bounding = append(caps.Bounding, c)
	caps.Permitted = append(caps.Permitted, c)
	caps.Effective = append(caps.Effective, c)
	caps.Inheritable = append(caps.Inheritable, c)
	caps.Ambient = append(caps.Ambient, c)
}
