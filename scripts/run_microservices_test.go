// Package scripts_test checks the shell scripts of this directory, with
// stand-ins for the binaries they start.
package scripts_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stub stands in for weft and weft-dev-kafka: it records its PID, and exits
// on SIGTERM, as they do after their graceful shutdown.
const stub = `#!/bin/sh
echo $$ >> "$STUB_PIDS"
trap 'exit 0' TERM
while :; do sleep 0.1; done
`

// run-microservices.sh started in the background by a non-interactive
// shell (which starts it with SIGINT ignored) stops every component on a
// SIGINT to its PID, and then exits.
func TestRunMicroservicesStopsOnSIGINT(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not found:", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "stub")
	if err := os.WriteFile(bin, []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, "pids")
	script, err := filepath.Abs("run-microservices.sh")
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The outer shell runs the script as an asynchronous command, prints
	// its PID and waits for it.
	cmd := exec.CommandContext(ctx, bash, "-c", `"$0" > "$1/log" 2>&1 & echo $!; wait`, script, dir)
	cmd.Env = append(os.Environ(), "WEFT="+bin, "KAFKA="+bin, "DATA="+filepath.Join(dir, "data"), "STUB_PIDS="+pidFile)
	cmd.Dir = dir
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("cannot read the script's PID: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("script PID %q: %v", line, err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })

	// Wait for the broker and the nine components.
	var pids []int
	for deadline := time.Now().Add(15 * time.Second); ; {
		pids = readPIDs(t, pidFile)
		if len(pids) == 10 {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			t.Fatalf("%d of 10 processes started; log:\n%s", len(pids), log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	})

	if err := syscall.Kill(pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		t.Fatalf("the script did not exit cleanly after SIGINT: %v; log:\n%s", err, log)
	}
	for _, p := range pids {
		if err := syscall.Kill(p, 0); err == nil {
			t.Errorf("component %d still runs after the script exited", p)
		}
	}
}

func readPIDs(t *testing.T, file string) []int {
	t.Helper()
	b, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for f := range strings.FieldsSeq(string(b)) {
		p, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("pid file: %v", err)
		}
		pids = append(pids, p)
	}
	return pids
}
