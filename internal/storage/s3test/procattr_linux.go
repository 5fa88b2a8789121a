package s3test

import (
	"os/exec"
	"syscall"
)

// setProcAttr kills minio if the test process dies without its cleanup
// (a -timeout panic, a kill).
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
