package kubetest

import (
	"context"
	"fmt"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
)

// waitEstablished blocks until every named CRD reports Established=True,
// or ctx ends. envtest only waits until discovery lists the resources; the
// Established condition is what the API server sets once it serves custom
// objects, and it is what a real cluster's operators check.
func waitEstablished(ctx context.Context, cfg *rest.Config, names []string) error {
	cs, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("apiextensions client: %w", err)
	}
	for _, name := range names {
		var last string
		err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			crd, err := cs.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				last = err.Error()
				return false, nil //nolint:nilerr // retried until ctx ends; last error reported then
			}
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextensionsv1.Established {
					last = fmt.Sprintf("Established=%s (%s: %s)", c.Status, c.Reason, c.Message)
					return c.Status == apiextensionsv1.ConditionTrue, nil
				}
			}
			last = "no Established condition yet"
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("customresourcedefinition %s not Established: %s: %w", name, last, err)
		}
	}
	return nil
}
