package main

// Cgroup tests: create a container with linux.resources and a cgroupsPath,
// then read the limits back from the host's cgroup v1 files (as
// runtime-tools' linux_cgroups_* and linux_cgroups_relative_* do).

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	rspec "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-tools/generate"
)

// expectation: a file of a controller and what it must hold.
type expect struct {
	controller, file string
	want             string
	contains         bool // want is a line of the file, not all of it
	optional         bool // skip when the kernel has no such file
}

type cgroupTest struct {
	name      string
	configure func(g *generate.Generator) (skip string)
	expect    []expect
}

func i64(v int64) *int64   { return &v }
func u16(v uint16) *uint16 { return &v }

var cgroupTests = []cgroupTest{
	{
		name: "memory",
		configure: func(g *generate.Generator) string {
			g.SetLinuxResourcesMemoryLimit(50 << 20)
			g.SetLinuxResourcesMemoryReservation(30 << 20)
			g.SetLinuxResourcesMemorySwap(80 << 20)
			g.SetLinuxResourcesMemorySwappiness(50)
			g.SetLinuxResourcesMemoryDisableOOMKiller(true)
			return ""
		},
		expect: []expect{
			{"memory", "memory.limit_in_bytes", "52428800", false, false},
			{"memory", "memory.soft_limit_in_bytes", "31457280", false, false},
			{"memory", "memory.memsw.limit_in_bytes", "83886080", false, true},
			{"memory", "memory.swappiness", "50", false, false},
			{"memory", "memory.oom_control", "oom_kill_disable 1", true, false},
		},
	},
	{
		name: "cpus",
		configure: func(g *generate.Generator) string {
			g.SetLinuxResourcesCPUShares(512)
			g.SetLinuxResourcesCPUQuota(50000)
			g.SetLinuxResourcesCPUPeriod(100000)
			g.SetLinuxResourcesCPUCpus("0")
			g.SetLinuxResourcesCPUMems("0")
			return ""
		},
		expect: []expect{
			{"cpu", "cpu.shares", "512", false, false},
			{"cpu", "cpu.cfs_quota_us", "50000", false, false},
			{"cpu", "cpu.cfs_period_us", "100000", false, false},
			{"cpuset", "cpuset.cpus", "0", false, false},
			{"cpuset", "cpuset.mems", "0", false, false},
		},
	},
	{
		name: "pids",
		configure: func(g *generate.Generator) string {
			g.SetLinuxResourcesPidsLimit(1000)
			return ""
		},
		expect: []expect{{"pids", "pids.max", "1000", false, false}},
	},
	{
		name: "blkio",
		configure: func(g *generate.Generator) string {
			if _, err := os.Stat("/sys/dev/block/7:0"); err != nil {
				return "no block device 7:0 (loop0) to throttle"
			}
			g.Config.Linux.Resources.BlockIO = &rspec.LinuxBlockIO{
				Weight: u16(500),
				ThrottleReadBpsDevice: []rspec.LinuxThrottleDevice{
					{LinuxBlockIODevice: rspec.LinuxBlockIODevice{Major: 7, Minor: 0}, Rate: 102400},
				},
				ThrottleWriteIOPSDevice: []rspec.LinuxThrottleDevice{
					{LinuxBlockIODevice: rspec.LinuxBlockIODevice{Major: 7, Minor: 0}, Rate: 300},
				},
			}
			return ""
		},
		expect: []expect{
			{"blkio", "blkio.weight", "500", false, true},
			{"blkio", "blkio.throttle.read_bps_device", "7:0 102400", true, false},
			{"blkio", "blkio.throttle.write_iops_device", "7:0 300", true, false},
		},
	},
	{
		name: "hugetlb",
		configure: func(g *generate.Generator) string {
			if cgroupMount("hugetlb") == "" {
				return "no cgroup v1 hugetlb hierarchy on this machine"
			}
			if _, err := os.Stat("/sys/kernel/mm/hugepages/hugepages-2048kB"); err != nil {
				return "no 2MB huge pages on this machine"
			}
			g.AddLinuxResourcesHugepageLimit("2MB", 4<<20)
			return ""
		},
		expect: []expect{{"hugetlb", "hugetlb.2MB.limit_in_bytes", "4194304", false, false}},
	},
	{
		name: "network",
		configure: func(g *generate.Generator) string {
			if cgroupMount("net_cls") == "" || cgroupMount("net_prio") == "" {
				return "no cgroup v1 net_cls/net_prio hierarchy on this machine"
			}
			g.SetLinuxResourcesNetworkClassID(0x100001)
			g.AddLinuxResourcesNetworkPriorities("lo", 3)
			return ""
		},
		expect: []expect{
			{"net_cls", "net_cls.classid", "1048577", false, false},
			{"net_prio", "net_prio.ifpriomap", "lo 3", true, false},
		},
	},
	{
		name: "devices",
		configure: func(g *generate.Generator) string {
			if cgroupMount("devices") == "" {
				return "no cgroup v1 devices hierarchy on this machine"
			}
			g.Config.Linux.Resources.Devices = []rspec.LinuxDeviceCgroup{
				{Allow: false, Access: "rwm"},
				{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"},
				{Allow: true, Type: "b", Major: i64(8), Access: "r"},
			}
			return ""
		},
		expect: []expect{
			{"devices", "devices.list", "c 1:3 rwm", true, false},
			{"devices", "devices.list", "b 8:* r", true, false},
		},
	},
}

func init() {
	for _, ct := range cgroupTests {
		ct := ct
		register("linux_cgroups_"+ct.name, func(t *TAP) error { return runCgroupTest(t, ct, false) })
		register("linux_cgroups_relative_"+ct.name, func(t *TAP) error { return runCgroupTest(t, ct, true) })
	}
}

func runCgroupTest(t *TAP, ct cgroupTest, relative bool) error {
	g := DefaultGenerator()
	if g.Config.Linux.Resources == nil {
		g.Config.Linux.Resources = &rspec.LinuxResources{}
	}
	if skip := ct.configure(g); skip != "" {
		t.Skip("linux.resources."+ct.name, skip)
		return nil
	}
	r, err := NewBundle()
	if err != nil {
		return err
	}
	defer r.Clean()
	path := cgroupParent() + "/" + r.ID
	if !relative {
		path = "/" + path
	}
	g.SetLinuxCgroupsPath(path)
	if err := r.SetConfig(g); err != nil {
		return err
	}
	if err := r.Create(); err != nil {
		t.Fail("create with linux.resources."+ct.name, err.Error())
		return nil
	}
	st, err := r.State()
	if err != nil {
		t.Fail("state", err.Error())
		return nil
	}
	for _, e := range ct.expect {
		desc := fmt.Sprintf("%s holds %s", e.file, e.want)
		mount := cgroupMount(e.controller)
		if mount == "" {
			t.Skip(desc, "no cgroup v1 "+e.controller+" hierarchy")
			continue
		}
		sub, err := processCgroup(st.Pid, e.controller)
		if err != nil {
			t.Fail(desc, err.Error())
			continue
		}
		wantSub := "/" + strings.TrimPrefix(path, "/")
		okPath := sub == wantSub
		if relative {
			okPath = strings.HasSuffix(sub, wantSub)
		}
		t.Ok(okPath, fmt.Sprintf("the container is in %s cgroup %s", e.controller, path), "it is in "+sub)
		file := filepath.Join(mount, sub, e.file)
		b, err := os.ReadFile(file)
		if os.IsNotExist(err) && e.optional {
			t.Skip(desc, "the kernel has no "+e.file)
			continue
		}
		if err != nil {
			t.Fail(desc, err.Error())
			continue
		}
		got := strings.TrimSpace(string(b))
		ok := got == e.want
		if e.contains {
			ok = false
			for _, l := range strings.Split(got, "\n") {
				if strings.TrimSpace(l) == e.want {
					ok = true
				}
			}
		}
		t.Ok(ok, desc, "it holds: "+got)
	}
	return nil
}

// cgroupDir is a controller's directory for an absolute cgroupsPath.
func cgroupDir(controller, path string) string {
	return filepath.Join(cgroupMount(controller), path)
}

// cgroupMount is where the v1 hierarchy holding controller is mounted.
func cgroupMount(controller string) string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		sep := strings.Index(line, " - ")
		if sep < 0 {
			continue
		}
		pre := strings.Fields(line[:sep])
		post := strings.Fields(line[sep+3:])
		if len(pre) < 5 || len(post) < 3 || post[0] != "cgroup" {
			continue
		}
		for _, o := range strings.Split(post[2], ",") {
			if o == controller {
				return pre[4]
			}
		}
	}
	return ""
}

// processCgroup is pid's cgroup in controller's v1 hierarchy.
func processCgroup(pid int, controller string) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				return parts[2], nil
			}
		}
	}
	return "", fmt.Errorf("process %d is in no %s cgroup", pid, controller)
}
