// Command node is a multi-call binary carrying the node half of the control plane's Kubernetes
// release: the kubelet and kube-scheduler.
//
// The node tier (devenv/node.py) starts each part as its own process, chosen by the first
// argument. It is a module of its own so that the control plane's binary (tests/controlplane) and
// its cache key stay as they are; VERSION is that release's, kept the same by build.sh.
package main

import (
	"context"
	"fmt"
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: node kubelet|kube-scheduler [args...]")
		os.Exit(2)
	}
	part := os.Args[1]
	// Each part parses os.Args itself (cobra), so drop the subcommand word.
	os.Args = append([]string{part}, os.Args[2:]...)
	switch part {
	case "kubelet":
		os.Exit(cli.Run(kubelet.NewKubeletCommand(context.Background())))
	case "kube-scheduler":
		os.Exit(cli.Run(scheduler.NewSchedulerCommand()))
	default:
		fmt.Fprintf(os.Stderr, "node: unknown part %q\n", part)
		os.Exit(2)
	}
}
