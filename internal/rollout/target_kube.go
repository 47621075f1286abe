package rollout

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/shadowsplit/shadowsplit/internal/istio"
)

// NewKubeTarget returns the Target for a VirtualService in the API server,
// read and updated with client (a dynamic client, for the reason given in
// internal/istio's package doc). Updates carry the read resourceVersion,
// field manager istio.FieldManager and strict field validation. It does no
// I/O.
func NewKubeTarget(cfg istio.Config, client dynamic.Interface) (Target, error) {
	if client == nil {
		return nil, errors.New("rollout: kube target: client is required")
	}
	if cfg.Namespace == "" || cfg.Name == "" {
		return nil, fmt.Errorf("rollout: kube target: namespace %q and name %q are required", cfg.Namespace, cfg.Name)
	}
	return &fenced{cfg: cfg, store: kubeStore{cfg: cfg, client: client.Resource(istio.VirtualServiceGVR).Namespace(cfg.Namespace)}}, nil
}

type kubeStore struct {
	cfg    istio.Config
	client dynamic.ResourceInterface
}

func (s kubeStore) id() string { return "virtualservice " + s.cfg.Namespace + "/" + s.cfg.Name }

func (s kubeStore) get(ctx context.Context) (*unstructured.Unstructured, error) {
	vs, err := s.client.Get(ctx, s.cfg.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%s: %w: %w", s.id(), istio.ErrNotFound, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: get: %w", s.id(), err)
	}
	return vs, nil
}

func (s kubeStore) update(ctx context.Context, vs *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	out, err := s.client.Update(ctx, vs, metav1.UpdateOptions{FieldManager: istio.FieldManager, FieldValidation: metav1.FieldValidationStrict})
	if apierrors.IsConflict(err) {
		return nil, fmt.Errorf("%s: update at resourceVersion %s: %w: %w", s.id(), vs.GetResourceVersion(), ErrConflict, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: update: %w", s.id(), err)
	}
	return out, nil
}
