// kyverno-check runs Kyverno v1.19.0's own admission-time checks on the YAML files dct2notation emits:
// ClusterPolicy through pkg/validation/policy.Validate (what the webhook and `kyverno apply` run, mock client),
// ImageValidatingPolicy through the image-verification compiler (CEL expressions, attestors, references).
// scripts/peers.sh builds it inside the downloaded kyverno module, whose go.mod replace directives `go install`
// refuses. One line per document: "OK <kind> <name>" or "FAIL <kind> <name>: <errors>"; exit 1 if any failed.
package main

import (
	"bytes"
	"fmt"
	"os"

	policiesv1beta1 "github.com/kyverno/api/api/policies.kyverno.io/v1beta1"
	kyvernov1 "github.com/kyverno/kyverno/api/kyverno/v1"
	"github.com/kyverno/kyverno/pkg/image/verification/evaluator"
	policyvalidation "github.com/kyverno/kyverno/pkg/validation/policy"
	"github.com/kyverno/sdk/extensions/imagedataloader"
	"sigs.k8s.io/yaml"
)

func check(doc []byte) (string, string, error) {
	var head struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return "", "", err
	}
	switch head.Kind {
	case "ClusterPolicy":
		var pol kyvernov1.ClusterPolicy
		if err := yaml.UnmarshalStrict(doc, &pol); err != nil {
			return head.Kind, head.Metadata.Name, err
		}
		_, err := policyvalidation.Validate(&pol, nil, nil, true, "", "")
		return head.Kind, pol.Name, err
	case "ImageValidatingPolicy":
		// v1 and v1beta1 share the spec; the compiler takes the v1beta1 type.
		var pol policiesv1beta1.ImageValidatingPolicy
		if err := yaml.UnmarshalStrict(doc, &pol); err != nil {
			return head.Kind, head.Metadata.Name, err
		}
		ictx, err := imagedataloader.NewImageContext(nil, nil, nil)
		if err != nil {
			return head.Kind, pol.Name, err
		}
		if _, errs := evaluator.NewCompiler(ictx, nil, nil, nil).Compile(&pol, nil, nil); len(errs) > 0 {
			return head.Kind, pol.Name, errs.ToAggregate()
		}
		return head.Kind, pol.Name, nil
	}
	return "", "", nil
}

func main() {
	failed := false
	for _, path := range os.Args[1:] {
		raw, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		for _, doc := range bytes.Split(raw, []byte("\n---\n")) {
			kind, name, err := check(bytes.TrimPrefix(doc, []byte("---\n")))
			switch {
			case kind == "":
				continue
			case err != nil:
				failed = true
				fmt.Printf("FAIL %s %s: %v\n", kind, name, err)
			default:
				fmt.Printf("OK %s %s\n", kind, name)
			}
		}
	}
	if failed {
		os.Exit(1)
	}
}
