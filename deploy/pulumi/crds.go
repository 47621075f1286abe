package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"gopkg.in/yaml.v3"
)

// crdFetchTimeout bounds downloading the CRD manifest.
const crdFetchTimeout = time.Minute

// maxCRDBytes caps the manifest read (Istio's is about 1 MB).
const maxCRDBytes = 16 << 20

// Why not pulumi-kubernetes' yaml/v2 ConfigFile: its Go package imports every
// Kubernetes API group of the SDK (65 packages, several minutes to compile
// on 2 cores) to type its outputs. Reading the file here and declaring one
// resource per CRD costs nothing and shows each CRD in the preview.

// readCRDs reads a multi-document YAML manifest from a path or an http(s)
// URL and returns its CustomResourceDefinitions. Anything else in the file
// is an error: this program installs CRDs, not arbitrary objects.
func readCRDs(ctx context.Context, source string) ([]map[string]any, error) {
	raw, err := readSource(ctx, source)
	if err != nil {
		return nil, fmt.Errorf("istio CRDs %s: %w", source, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var crds []map[string]any
	for i := 0; ; i++ {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("istio CRDs %s: document %d: %w", source, i, err)
		}
		if len(doc) == 0 {
			continue
		}
		kind, _ := doc["kind"].(string)
		apiVersion, _ := doc["apiVersion"].(string)
		meta, _ := doc["metadata"].(map[string]any)
		name, _ := meta["name"].(string)
		if kind != "CustomResourceDefinition" || apiVersion != "apiextensions.k8s.io/v1" || name == "" {
			return nil, fmt.Errorf("istio CRDs %s: document %d (%s %s %q) is not an apiextensions.k8s.io/v1 CustomResourceDefinition",
				source, i, apiVersion, kind, name)
		}
		crds = append(crds, doc)
	}
	if len(crds) == 0 {
		return nil, fmt.Errorf("istio CRDs %s: no CustomResourceDefinition in the file", source)
	}
	return crds, nil
}

func readSource(ctx context.Context, source string) ([]byte, error) {
	if !strings.HasPrefix(source, "https://") && !strings.HasPrefix(source, "http://") {
		return os.ReadFile(source)
	}
	ctx, cancel := context.WithTimeout(ctx, crdFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, source, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET: %s", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxCRDBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxCRDBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxCRDBytes)
	}
	return b, nil
}

// installIstioCRDs declares one CustomResourceDefinition per CRD in
// s.IstioCRDs. Only for clusters without Istio yet: an Istio install
// (istioctl, the istio/base chart) owns them otherwise.
func installIstioCRDs(ctx *pulumi.Context, s Settings, opts ...pulumi.ResourceOption) ([]pulumi.Resource, error) {
	crds, err := readCRDs(ctx.Context(), s.IstioCRDs)
	if err != nil {
		return nil, err
	}
	out := make([]pulumi.Resource, 0, len(crds))
	for _, crd := range crds {
		meta := crd["metadata"].(map[string]any)
		name := meta["name"].(string)
		labels := pulumi.StringMap{}
		if l, ok := meta["labels"].(map[string]any); ok {
			for k, v := range l {
				labels[k] = pulumi.String(fmt.Sprint(v))
			}
		}
		r, err := apiextensions.NewCustomResource(ctx, "crd-"+name, &apiextensions.CustomResourceArgs{
			ApiVersion:  pulumi.String("apiextensions.k8s.io/v1"),
			Kind:        pulumi.String("CustomResourceDefinition"),
			Metadata:    &metav1.ObjectMetaArgs{Name: pulumi.String(name), Labels: labels},
			OtherFields: kubernetes.UntypedArgs{"spec": crd["spec"]},
		}, opts...)
		if err != nil {
			return nil, fmt.Errorf("CustomResourceDefinition %s: %w", name, err)
		}
		out = append(out, r)
	}
	return out, nil
}
