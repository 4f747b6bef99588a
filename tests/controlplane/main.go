// Command controlplane is a multi-call binary carrying one Kubernetes release:
// embedded etcd, kube-apiserver, kube-controller-manager and kubectl.
//
// The jitaccess tests and local run start each part as its own process from this
// one binary (chosen by the first argument), so the client and the server always
// share a version and nothing but Go modules is needed to get a control plane.
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	kubectl "k8s.io/kubectl/pkg/cmd"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: controlplane etcd|kube-apiserver|kube-controller-manager|kubectl [args...]")
		os.Exit(2)
	}
	part := os.Args[1]
	// Each part parses os.Args itself (cobra), so drop the subcommand word.
	os.Args = append([]string{part}, os.Args[2:]...)
	switch part {
	case "etcd":
		os.Exit(runEtcd(os.Args[1:]))
	case "kube-apiserver":
		os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
	case "kube-controller-manager":
		os.Exit(cli.Run(controllermanager.NewControllerManagerCommand()))
	case "kubectl":
		os.Exit(cli.Run(kubectl.NewDefaultKubectlCommand()))
	default:
		fmt.Fprintf(os.Stderr, "controlplane: unknown part %q\n", part)
		os.Exit(2)
	}
}

// runEtcd serves a single-member etcd on loopback until SIGTERM or SIGINT.
// Fsync is off: the data dir is a throwaway temp dir, and fsync dominates
// write latency on the shared disks these machines have.
func runEtcd(args []string) int {
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "directory for etcd data (required)")
	clientPort := fs.Int("client-port", 2379, "loopback port for clients")
	peerPort := fs.Int("peer-port", 2380, "loopback port for peers")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "etcd: --data-dir is required")
		return 2
	}
	clientURL, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", *clientPort))
	peerURL, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", *peerPort))

	cfg := embed.NewConfig()
	cfg.Name = "jitaccess-test"
	cfg.Dir = *dataDir
	cfg.ListenClientUrls = []url.URL{*clientURL}
	cfg.AdvertiseClientUrls = []url.URL{*clientURL}
	cfg.ListenPeerUrls = []url.URL{*peerURL}
	cfg.AdvertisePeerUrls = []url.URL{*peerURL}
	cfg.InitialCluster = fmt.Sprintf("%s=%s", cfg.Name, peerURL.String())
	cfg.UnsafeNoFsync = true
	cfg.LogLevel = "error"

	server, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcd: %v\n", err)
		return 1
	}
	defer server.Close()
	select {
	case <-server.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		fmt.Fprintln(os.Stderr, "etcd: not ready after 60s")
		return 1
	}
	fmt.Fprintln(os.Stderr, "etcd: ready")

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-stop:
		return 0
	case err := <-server.Err():
		fmt.Fprintf(os.Stderr, "etcd: %v\n", err)
		return 1
	}
}
