// Command pause holds a pod's namespaces open for its sandbox: it sleeps until SIGINT or
// SIGTERM and reaps any orphaned children meanwhile, as the upstream pause container does.
// devcluster builds it because the upstream image sits in a registry these machines cannot
// reach; it is imported into each node's containerd under the sandbox image's name.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
