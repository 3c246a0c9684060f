// Command kstatus prints what sigs.k8s.io/cli-utils' kstatus (the library behind
// `helm --wait`, Flux and `kubectl`-based tooling) computes for each object it reads: one JSON
// line {"name", "status", "message"} per object of a JSON List (or one object) on stdin.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type line struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	var obj unstructured.Unstructured
	if err := obj.UnmarshalJSON(data); err != nil {
		fail(fmt.Errorf("stdin is not a Kubernetes object or list: %w", err))
	}
	items := []unstructured.Unstructured{obj}
	if obj.IsList() {
		list, err := obj.ToList()
		if err != nil {
			fail(err)
		}
		items = list.Items
	}
	out := json.NewEncoder(os.Stdout)
	for i := range items {
		result, err := status.Compute(&items[i])
		if err != nil {
			fail(fmt.Errorf("%s: %w", items[i].GetName(), err))
		}
		if err := out.Encode(line{items[i].GetName(), result.Status.String(), result.Message}); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kstatus:", err)
	os.Exit(1)
}
