package main

// Lifecycle tests: the runtime's operations and their errors (runtime.md),
// driven from outside the container.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	rspec "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-tools/generate"
)

func init() {
	register("create", testCreate)
	register("start", testStart)
	register("state", testState)
	register("kill", testKill)
	register("killsig", testKillSig)
	register("kill_no_effect", testKillNoEffect)
	register("delete", testDelete)
	register("delete_resources", testDeleteResources)
	register("delete_only_create_resources", testDeleteOnlyCreateResources)
	register("pidfile", testPidFile)
	register("misc_props", testMiscProps)
	register("config_updates_without_affect", testConfigUpdates)
	register("hooks", testHooks)
	register("hooks_stdin", testHooksStdin)
	register("prestart_fail", func(t *TAP) error { return testHookFail(t, "prestart") })
	register("poststart_fail", func(t *TAP) error { return testHookFail(t, "poststart") })
	register("poststop_fail", func(t *TAP) error { return testHookFail(t, "poststop") })
	register("process_capabilities_fail", func(t *TAP) error {
		g := DefaultGenerator()
		g.Config.Process.Capabilities.Bounding = append(g.Config.Process.Capabilities.Bounding, "CAP_TEST")
		return expectCreateFails(t, g, "create MUST fail on an unknown capability (CAP_TEST)")
	})
	register("process_rlimits_fail", func(t *TAP) error {
		g := DefaultGenerator()
		g.Config.Process.Rlimits = append(g.Config.Process.Rlimits, rspec.POSIXRlimit{Type: "RLIMIT_TEST", Hard: 1, Soft: 1})
		return expectCreateFails(t, g, "create MUST fail on an unknown rlimit (RLIMIT_TEST)")
	})
	register("linux_ns_path_type", func(t *TAP) error {
		g := DefaultGenerator()
		setNamespace(g.Config, rspec.NetworkNamespace, "/proc/self/ns/uts")
		return expectCreateFails(t, g, "create MUST fail when a namespace path is of another type (uts for network)")
	})
}

// sh runs a busybox shell command as the container's process.
func sh(g *generate.Generator, script string) {
	g.SetProcessArgs([]string{"/bin/sh", "-c", script})
}

func newContainer(g *generate.Generator) (*Runtime, error) {
	r, err := NewBundle()
	if err != nil {
		return nil, err
	}
	if err := r.SetConfig(g); err != nil {
		r.Clean()
		return nil, err
	}
	return r, nil
}

func expectCreateFails(t *TAP, g *generate.Generator, desc string) error {
	r, err := newContainer(g)
	if err != nil {
		return err
	}
	defer r.Clean()
	err = r.Create()
	t.Ok(err != nil, desc, "create succeeded")
	if err == nil {
		return nil
	}
	_, serr := r.State()
	ok := serr != nil
	if !ok {
		st, _ := r.State()
		ok = st.Status == rspec.StateStopped
	}
	t.Ok(ok, "a failed create leaves no running container behind", "state: "+errText(serr))
	return nil
}

func testCreate(t *TAP) error {
	g := DefaultGenerator()
	g.SetProcessArgs([]string{"true"})
	r, err := newContainer(g)
	if err != nil {
		return err
	}
	defer r.Clean()
	id := r.ID
	r.ID = ""
	err = r.Create()
	t.Ok(err != nil, "create MUST generate an error if the ID is not provided")
	r.ID = id
	err = r.Create()
	t.Ok(err == nil, "create MUST create a new container", errText(err))
	if err != nil {
		return nil
	}
	st, err := r.State()
	t.Ok(err == nil && st.ID == id, "'state' MUST return the state of a container", errText(err))
	t.Ok(st.Status == rspec.StateCreated, "the status after create is \"created\"", "status: "+string(st.Status))
	err = r.Create()
	t.Ok(err != nil, "create MUST generate an error if the ID provided is not unique")
	st2, err := r.State()
	t.Ok(err == nil && st2.Pid == st.Pid, "a failed create with a taken ID leaves the existing container alone", errText(err))
	r.ID = "bad/id"
	err = r.Create()
	t.Ok(err != nil, "create rejects an ID with a '/'")
	r.ID = id
	return nil
}

func testStart(t *TAP) error {
	g := DefaultGenerator()
	sh(g, "echo started > /started")
	r, err := newContainer(g)
	if err != nil {
		return err
	}
	defer r.Clean()
	err = r.Start()
	t.Ok(err != nil, "start MUST generate an error if the container does not exist")
	if err := r.Create(); err != nil {
		t.Fail("create", err.Error())
		return nil
	}
	time.Sleep(200 * time.Millisecond)
	_, err = os.Stat(filepath.Join(r.Bundle, "started"))
	t.Ok(os.IsNotExist(err), "create MUST NOT run the user-specified program")
	err = r.Start()
	t.Ok(err == nil, "start MUST run the user-specified program", errText(err))
	_, werr := r.WaitFor(10*time.Second, rspec.StateStopped)
	_, err = os.Stat(filepath.Join(r.Bundle, "started"))
	t.Ok(err == nil && werr == nil, "the program ran and the container stopped", errText(err), errText(werr))
	err = r.Start()
	t.Ok(err != nil, "start MUST generate an error on a container that is not created")
	return nil
}

func testState(t *TAP) error {
	g := DefaultGenerator()
	g.SetProcessArgs([]string{"sleep", "30"})
	g.AddAnnotation("org.berth.test", "value")
	r, err := newContainer(g)
	if err != nil {
		return err
	}
	defer r.Clean()
	id := r.ID
	r.ID = ""
	_, err = r.State()
	t.Ok(err != nil, "state MUST generate an error if it is not provided the ID of a container")
	r.ID = id
	_, err = r.State()
	t.Ok(err != nil, "state MUST generate an error if the container does not exist")
	if err := r.Create(); err != nil {
		t.Fail("create", err.Error())
		return nil
	}
	out, err := r.Run("state", r.ID)
	t.Ok(err == nil, "state MUST return the state of a container", errText(err))
	var raw map[string]interface{}
	jerr := json.Unmarshal(out, &raw)
	t.Ok(jerr == nil, "the state is JSON", errText(jerr))
	for _, k := range []string{"ociVersion", "id", "status", "pid", "bundle"} {
		_, ok := raw[k]
		t.Ok(ok, "the state has the REQUIRED property "+k, string(out))
	}
	st, _ := r.State()
	t.Ok(st.ID == id, "state.id is the container's ID", st.ID)
	t.Ok(st.Status == rspec.StateCreated, "state.status is created after create", string(st.Status))
	t.Ok(st.Pid > 0, "state.pid is set once created", fmt.Sprint(st.Pid))
	t.Ok(st.Bundle == r.Bundle, "state.bundle is the bundle's absolute path", st.Bundle+" vs "+r.Bundle)
	t.Ok(st.Annotations["org.berth.test"] == "value", "state.annotations has the config's annotations", fmt.Sprint(st.Annotations))
	if err := r.Start(); err != nil {
		t.Fail("start", err.Error())
		return nil
	}
	st, _ = r.State()
	t.Ok(st.Status == rspec.StateRunning, "state.status is running after start", string(st.Status))
	_ = r.Kill("KILL")
	st, err = r.WaitFor(10*time.Second, rspec.StateStopped)
	t.Ok(err == nil, "state.status is stopped after the process is killed", errText(err))
	return nil
}

func testKill(t *TAP) error {
	type kcase struct {
		desc    string
		args    []string
		start   bool
		wantErr bool
		stopped bool
	}
	kcases := []kcase{
		{"kill MUST generate an error if it is not provided the container ID", nil, false, true, false},
		{"kill of a container that does not exist MUST generate an error", []string{"KILL"}, false, true, false},
		{"kill MUST send the signal to a created container", []string{"KILL"}, false, false, false},
		{"kill of a stopped container MUST generate an error", []string{"KILL"}, true, true, true},
		{"kill MUST send the signal to a running container", []string{"KILL"}, true, false, false},
	}
	for i, c := range kcases {
		g := DefaultGenerator()
		if c.stopped {
			g.SetProcessArgs([]string{"true"})
		} else {
			g.SetProcessArgs([]string{"sleep", "30"})
		}
		r, err := newContainer(g)
		if err != nil {
			return err
		}
		if i >= 2 {
			if err := r.Create(); err != nil {
				t.Fail(c.desc+" (create)", err.Error())
				r.Clean()
				continue
			}
			if c.start {
				if err := r.Start(); err != nil {
					t.Fail(c.desc+" (start)", err.Error())
					r.Clean()
					continue
				}
			}
			if c.stopped {
				if _, err := r.WaitFor(10*time.Second, rspec.StateStopped); err != nil {
					t.Fail(c.desc+" (stop)", err.Error())
					r.Clean()
					continue
				}
			}
		}
		var kerr error
		if i == 0 {
			_, kerr = r.Run("kill")
		} else {
			kerr = r.Kill(c.args[0])
		}
		t.Ok((kerr != nil) == c.wantErr, c.desc, errText(kerr))
		if i >= 2 && !c.wantErr && kerr == nil {
			_, err := r.WaitFor(10*time.Second, rspec.StateStopped)
			t.Ok(err == nil, c.desc+": it stops", errText(err))
		}
		r.Clean()
	}
	return nil
}

func testKillSig(t *TAP) error {
	for _, sig := range []string{"TERM", "USR1", "HUP"} {
		g := DefaultGenerator()
		sh(g, fmt.Sprintf("trap 'echo %s > /got; exit 0' %s; echo ready > /ready; while true; do sleep 0.05; done", sig, sig))
		r, err := newContainer(g)
		if err != nil {
			return err
		}
		func() {
			defer r.Clean()
			if err := r.Create(); err != nil {
				t.Fail("kill "+sig+" (create)", err.Error())
				return
			}
			if err := r.Start(); err != nil {
				t.Fail("kill "+sig+" (start)", err.Error())
				return
			}
			for i := 0; i < 100; i++ {
				if _, err := os.Stat(filepath.Join(r.Bundle, "ready")); err == nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			kerr := r.Kill(sig)
			_, werr := r.WaitFor(10*time.Second, rspec.StateStopped)
			got, _ := os.ReadFile(filepath.Join(r.Bundle, "got"))
			t.Ok(kerr == nil && werr == nil && strings.TrimSpace(string(got)) == sig,
				"kill MUST send SIG"+sig+" to the container process", errText(kerr), errText(werr), "got: "+string(got))
		}()
	}
	return nil
}

func testKillNoEffect(t *TAP) error {
	g := DefaultGenerator()
	g.SetProcessArgs([]string{"true"})
	r, err := newContainer(g)
	if err != nil {
		return err
	}
	defer r.Clean()
	if err := r.Create(); err != nil {
		t.Fail("create", err.Error())
		return nil
	}
	if err := r.Start(); err != nil {
		t.Fail("start", err.Error())
		return nil
	}
	before, err := r.WaitFor(10*time.Second, rspec.StateStopped)
	if err != nil {
		t.Fail("the container stops", err.Error())
		return nil
	}
	kerr := r.Kill("KILL")
	after, serr := r.State()
	t.Ok(kerr != nil, "kill of a stopped container MUST generate an error")
	t.Ok(serr == nil && after.Status == before.Status && after.Pid == before.Pid,
		"kill of a stopped container MUST have no effect on it", errText(serr))
	return nil
}

func testDelete(t *TAP) error {
	g := DefaultGenerator()
	g.SetProcessArgs([]string{"sleep", "30"})
	r, err := newContainer(g)
	if err != nil {
		return err
	}
	defer r.Clean()
	id := r.ID
	r.ID = ""
	t.Ok(r.Delete() != nil, "delete MUST generate an error if it is not provided the container ID")
	r.ID = id
	t.Ok(r.Delete() != nil, "delete of a container that does not exist MUST generate an error")
	if err := r.Create(); err != nil {
		t.Fail("create", err.Error())
		return nil
	}
	derr := r.Delete()
	_, serr := r.State()
	t.Ok(derr != nil, "delete of a created (not stopped) container MUST generate an error")
	t.Ok(serr == nil, "delete of a created container MUST have no effect on it", errText(serr))
	if serr != nil {
		return nil
	}
	if err := r.Start(); err != nil {
		t.Fail("start", err.Error())
		return nil
	}
	derr = r.Delete()
	st, serr := r.State()
	t.Ok(derr != nil, "delete of a running container MUST generate an error")
	t.Ok(serr == nil && st.Status == rspec.StateRunning, "delete of a running container MUST have no effect on it", errText(serr))
	_ = r.Kill("KILL")
	if _, err := r.WaitFor(10*time.Second, rspec.StateStopped); err != nil {
		t.Fail("the container stops after kill", err.Error())
		return nil
	}
	derr = r.Delete()
	_, serr = r.State()
	t.Ok(derr == nil, "delete of a stopped container succeeds", errText(derr))
	t.Ok(serr != nil, "after delete the container no longer exists")
	return nil
}

// cgroupParent is where the suite's containers' cgroups go.
func cgroupParent() string {
	if p := os.Getenv("OCITEST_CGROUP"); p != "" {
		return p
	}
	return "ocitest"
}

func testDeleteResources(t *TAP) error {
	g := DefaultGenerator()
	g.SetProcessArgs([]string{"sleep", "30"})
	r, err := newContainer(g)
	if err != nil {
		return err
	}
	defer r.Clean()
	cg := "/" + cgroupParent() + "/" + r.ID
	g.SetLinuxCgroupsPath(cg)
	g.SetLinuxResourcesPidsLimit(100)
	if err := r.SetConfig(g); err != nil {
		return err
	}
	if err := r.Create(); err != nil {
		t.Fail("create", err.Error())
		return nil
	}
	st, _ := r.State()
	pidsDir := cgroupDir("pids", cg)
	_, err = os.Stat(pidsDir)
	t.Ok(err == nil, "the container's cgroup exists after create", errText(err))
	if err := r.Start(); err != nil {
		t.Fail("start", err.Error())
		return nil
	}
	_ = r.Kill("KILL")
	if _, err := r.WaitFor(10*time.Second, rspec.StateStopped); err != nil {
		t.Fail("the container stops", err.Error())
		return nil
	}
	derr := r.Delete()
	t.Ok(derr == nil, "delete of a stopped container succeeds", errText(derr))
	_, serr := r.State()
	t.Ok(serr != nil, "delete MUST delete the container (state fails afterwards)")
	_, err = os.Stat(pidsDir)
	t.Ok(os.IsNotExist(err), "delete MUST delete the resources created at create (the cgroup)", pidsDir)
	t.Ok(st.Pid > 0 && !processAlive(st.Pid), "the container process is gone", fmt.Sprint(st.Pid))
	return nil
}

func testDeleteOnlyCreateResources(t *TAP) error {
	holder, err := startNamespaceHolder("--net", "--uts", "--ipc")
	if err != nil {
		return err
	}
	defer holder.stop()
	g := DefaultGenerator()
	g.SetProcessArgs([]string{"true"})
	setNamespace(g.Config, rspec.NetworkNamespace, holder.nsPath("net"))
	r, err := newContainer(g)
	if err != nil {
		return err
	}
	defer r.Clean()
	if err := r.Create(); err != nil {
		t.Fail("create", err.Error())
		return nil
	}
	_ = r.Start()
	_, _ = r.WaitFor(10*time.Second, rspec.StateStopped)
	derr := r.Delete()
	t.Ok(derr == nil, "delete of a stopped container succeeds", errText(derr))
	_, err = os.Stat(holder.nsPath("net"))
	t.Ok(err == nil && holder.alive(), "delete MUST NOT delete resources it did not create (a joined network namespace)", errText(err))
	return nil
}

func testPidFile(t *TAP) error {
	g := DefaultGenerator()
	g.SetProcessArgs([]string{"true"})
	r, err := newContainer(g)
	if err != nil {
		return err
	}
	defer r.Clean()
	r.PidFile = r.Bundle + ".pid"
	defer os.Remove(r.PidFile)
	if err := r.Create(); err != nil {
		t.Fail("create --pid-file", err.Error())
		return nil
	}
	b, err := os.ReadFile(r.PidFile)
	st, serr := r.State()
	pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
	t.Ok(err == nil && serr == nil && perr == nil && pid == st.Pid, "the pid file holds the container's pid", errText(err), errText(serr), string(b))
	return nil
}

func testMiscProps(t *TAP) error {
	g := DefaultGenerator()
	g.SetProcessArgs([]string{"true"})
	r, err := newContainer(g)
	if err != nil {
		return err
	}
	defer r.Clean()
	if err := r.Create(); err != nil {
		t.Fail("create", err.Error())
		return nil
	}
	st, err := r.State()
	t.Ok(err == nil && st.Version == g.Config.Version, "state.ociVersion is the config's ociVersion", st.Version, errText(err))
	if err := r.Start(); err != nil {
		t.Fail("start", err.Error())
		return nil
	}
	_, werr := r.WaitFor(10*time.Second, rspec.StateStopped)
	t.Ok(werr == nil, "a container whose process exits is stopped", errText(werr))
	derr := r.Delete()
	t.Ok(derr == nil, "delete of a stopped container succeeds", errText(derr))
	// The same ID can be used again once deleted.
	cerr := r.Create()
	t.Ok(cerr == nil, "an ID can be reused after delete", errText(cerr))
	return nil
}

func testConfigUpdates(t *TAP) error {
	g := DefaultGenerator()
	sh(g, "echo original > /which")
	r, err := newContainer(g)
	if err != nil {
		return err
	}
	defer r.Clean()
	if err := r.Create(); err != nil {
		t.Fail("create", err.Error())
		return nil
	}
	g2 := DefaultGenerator()
	sh(g2, "echo updated > /which")
	g2.SetHostname("changed")
	if err := r.SetConfig(g2); err != nil {
		return err
	}
	if err := r.Start(); err != nil {
		t.Fail("start", err.Error())
		return nil
	}
	_, _ = r.WaitFor(10*time.Second, rspec.StateStopped)
	b, _ := os.ReadFile(filepath.Join(r.Bundle, "which"))
	t.Ok(strings.TrimSpace(string(b)) == "original", "changes to config.json after create MUST NOT affect the container", "ran: "+string(b))
	return nil
}

// hookCmd is a host shell command as a hook.
func hookCmd(script string) rspec.Hook {
	return rspec.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", script}}
}

func testHooks(t *TAP) error {
	g := DefaultGenerator()
	g.SetProcessArgs([]string{"sleep", "30"})
	r, err := newContainer(g)
	if err != nil {
		return err
	}
	defer r.Clean()
	log := r.Bundle + ".hooks"
	defer os.Remove(log)
	g.Config.Hooks = &rspec.Hooks{
		CreateRuntime: []rspec.Hook{hookCmd("echo createRuntime >> " + log)},
		Prestart:      []rspec.Hook{hookCmd("echo prestart >> " + log), hookCmd("echo prestart2 >> " + log)},
		Poststart:     []rspec.Hook{hookCmd("echo poststart >> " + log)},
		Poststop:      []rspec.Hook{hookCmd("echo poststop >> " + log)},
	}
	if err := r.SetConfig(g); err != nil {
		return err
	}
	read := func() string {
		b, _ := os.ReadFile(log)
		return strings.Join(strings.Fields(string(b)), " ")
	}
	if err := r.Create(); err != nil {
		t.Fail("create", err.Error())
		return nil
	}
	got := read()
	t.Ok(strings.Contains(got, "createRuntime"), "createRuntime hooks MUST be called during create", got)
	t.Ok(strings.Contains(got, "prestart prestart2"), "prestart hooks MUST be called during create, in order", got)
	if err := r.Start(); err != nil {
		t.Fail("start", err.Error())
		return nil
	}
	time.Sleep(300 * time.Millisecond)
	got = read()
	t.Ok(strings.HasSuffix(got, "poststart"), "poststart hooks MUST be called after the process starts", got)
	_ = r.Kill("KILL")
	_, _ = r.WaitFor(10*time.Second, rspec.StateStopped)
	t.Ok(!strings.Contains(read(), "poststop"), "poststop hooks are not called before delete", read())
	if err := r.Delete(); err != nil {
		t.Fail("delete", err.Error())
		return nil
	}
	got = read()
	t.Ok(strings.HasSuffix(got, "poststop"), "poststop hooks MUST be called after the container is deleted", got)
	return nil
}

func testHooksStdin(t *TAP) error {
	g := DefaultGenerator()
	g.SetProcessArgs([]string{"true"})
	r, err := newContainer(g)
	if err != nil {
		return err
	}
	defer r.Clean()
	g.AddAnnotation("org.berth.hook", "stdin")
	g.Config.Hooks = &rspec.Hooks{
		Prestart:  []rspec.Hook{hookCmd("cat > " + r.Bundle + ".prestart")},
		Poststart: []rspec.Hook{hookCmd("cat > " + r.Bundle + ".poststart")},
		Poststop:  []rspec.Hook{hookCmd("cat > " + r.Bundle + ".poststop")},
	}
	for _, h := range []string{".prestart", ".poststart", ".poststop"} {
		defer os.Remove(r.Bundle + h)
	}
	if err := r.SetConfig(g); err != nil {
		return err
	}
	if err := r.Create(); err != nil {
		t.Fail("create", err.Error())
		return nil
	}
	if err := r.Start(); err != nil {
		t.Fail("start", err.Error())
		return nil
	}
	_, _ = r.WaitFor(10*time.Second, rspec.StateStopped)
	if err := r.Delete(); err != nil {
		t.Fail("delete", err.Error())
		return nil
	}
	for _, h := range []string{"prestart", "poststart", "poststop"} {
		b, err := os.ReadFile(r.Bundle + "." + h)
		var st rspec.State
		jerr := json.Unmarshal(b, &st)
		t.Ok(err == nil && jerr == nil && st.ID == r.ID && st.Bundle == r.Bundle && st.Annotations["org.berth.hook"] == "stdin",
			h+" hooks MUST receive the container's state on stdin", string(b), errText(err), errText(jerr))
		if h != "poststop" {
			t.Ok(st.Pid > 0, h+" hooks get the container's pid in the state", string(b))
		}
	}
	return nil
}

func testHookFail(t *TAP, kind string) error {
	g := DefaultGenerator()
	sh(g, "echo ran > /ran; sleep 1")
	fail := hookCmd("exit 1")
	g.Config.Hooks = &rspec.Hooks{}
	switch kind {
	case "prestart":
		g.Config.Hooks.Prestart = []rspec.Hook{fail}
	case "poststart":
		g.Config.Hooks.Poststart = []rspec.Hook{fail}
	case "poststop":
		g.Config.Hooks.Poststop = []rspec.Hook{fail}
	}
	r, err := newContainer(g)
	if err != nil {
		return err
	}
	defer r.Clean()
	cerr := r.Create()
	var serr error
	if cerr == nil {
		serr = r.Start()
	}
	time.Sleep(300 * time.Millisecond)
	_, ranErr := os.Stat(filepath.Join(r.Bundle, "ran"))
	ran := ranErr == nil
	switch kind {
	case "prestart":
		t.Ok(cerr != nil || serr != nil, "a failing prestart hook MUST make the runtime generate an error")
		t.Ok(!ran, "a failing prestart hook MUST stop the container before the process runs")
		return nil
	case "poststart":
		t.Ok(cerr == nil, "create succeeds", errText(cerr))
		t.Ok(ran, "a failing poststart hook MUST NOT stop the lifecycle (the process runs)", errText(serr))
		return nil
	}
	t.Ok(cerr == nil && serr == nil && ran, "the container runs", errText(cerr), errText(serr))
	_, _ = r.WaitFor(10*time.Second, rspec.StateStopped)
	derr := r.Delete()
	_, stateErr := r.State()
	t.Ok(stateErr != nil, "a failing poststop hook MUST NOT stop delete (the container is gone)", errText(derr))
	return nil
}

func setNamespace(s *rspec.Spec, typ rspec.LinuxNamespaceType, path string) {
	for i, ns := range s.Linux.Namespaces {
		if ns.Type == typ {
			s.Linux.Namespaces[i].Path = path
			return
		}
	}
	s.Linux.Namespaces = append(s.Linux.Namespaces, rspec.LinuxNamespace{Type: typ, Path: path})
}

func removeNamespace(s *rspec.Spec, typ rspec.LinuxNamespaceType) {
	var out []rspec.LinuxNamespace
	for _, ns := range s.Linux.Namespaces {
		if ns.Type != typ {
			out = append(out, ns)
		}
	}
	s.Linux.Namespaces = out
}

// processAlive: pid exists and is not a zombie waiting for its reaper.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndex(s, ")")
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
