// Command deviceplugin advertises fake GPUs to a kubelet as nvidia.com/gpu, so that scheduling
// and allocation behave as on a GPU node: the kubelet counts them, the scheduler places pods by
// them, and each container that gets some sees their ids in NVIDIA_VISIBLE_DEVICES, the
// variable NVIDIA's container runtime reads. No device is mounted: there is none.
//
//	deviceplugin -count 4 -dir <kubelet device-plugins folder>
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

const resource = "nvidia.com/gpu"

type plugin struct {
	pluginapi.UnimplementedDevicePluginServer
	devices []*pluginapi.Device
	stop    chan struct{}
}

func (p *plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

func (p *plugin) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: p.devices}); err != nil {
		return err
	}
	select { // the devices never change; hold the stream until we stop or the kubelet goes
	case <-p.stop:
	case <-stream.Context().Done():
	}
	return nil
}

func (p *plugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	out := &pluginapi.AllocateResponse{}
	for _, c := range req.ContainerRequests {
		out.ContainerResponses = append(out.ContainerResponses, &pluginapi.ContainerAllocateResponse{
			Envs: map[string]string{"NVIDIA_VISIBLE_DEVICES": strings.Join(c.DevicesIds, ",")},
		})
	}
	return out, nil
}

func (p *plugin) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}

func main() {
	count := flag.Int("count", 4, "how many fake GPUs to advertise")
	dir := flag.String("dir", pluginapi.DevicePluginPath, "the kubelet's device-plugins folder")
	flag.Parse()
	p := &plugin{stop: make(chan struct{})}
	for i := 0; i < *count; i++ {
		p.devices = append(p.devices, &pluginapi.Device{ID: fmt.Sprintf("fake-gpu-%d", i), Health: pluginapi.Healthy})
	}
	endpoint := fmt.Sprintf("devcluster-gpu-%d.sock", os.Getpid())
	socket := filepath.Join(*dir, endpoint)
	listener, err := net.Listen("unix", socket)
	if err != nil {
		log.Fatalf("deviceplugin: listen on %s: %v", socket, err)
	}
	defer os.Remove(socket)
	server := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(server, p)
	go server.Serve(listener) //nolint:errcheck

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+filepath.Join(*dir, "kubelet.sock"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatalf("deviceplugin: connect to the kubelet: %v", err)
	}
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version: pluginapi.Version, Endpoint: endpoint, ResourceName: resource,
	}, grpc.WaitForReady(true))
	conn.Close()
	if err != nil {
		log.Fatalf("deviceplugin: register with the kubelet: %v", err)
	}
	log.Printf("deviceplugin: %d x %s registered at %s", *count, resource, socket)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	<-signals
	close(p.stop)
	server.Stop()
}
