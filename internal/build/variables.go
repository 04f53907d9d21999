package build

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// LoadVariables merges the postBuild variables of a stage the way Flux does:
// the data of each substituteFrom ConfigMap or Secret (in namespace) in
// order, later ones overriding earlier ones, then postBuild.substitute on
// top. Line breaks are removed from every value, as Flux removes newlines
// (and carriage returns and the Unicode breaks too), so that a value
// cannot break the YAML it is substituted into. Only ConfigMap data and
// Secret data are read (binaryData is ignored, as in Flux).
//
// It returns nil when postBuild is nil (no substitution). A missing
// referent that is not optional, or an unknown kind, is an *Error naming the
// referent; an optional missing one is skipped. Any other API error is
// returned wrapped, not as *Error: it is transient and worth a retry.
func LoadVariables(ctx context.Context, c client.Reader, namespace string, postBuild *stagesetv1.PostBuild) (map[string]string, error) {
	vars, _, err := LoadVariablesFromSecrets(ctx, c, namespace, postBuild)
	return vars, err
}

// LoadVariablesFromSecrets is LoadVariables that also names the variables
// whose value was read from a Secret, so that stagesetctl can mask them
// where it prints a build.
func LoadVariablesFromSecrets(ctx context.Context, c client.Reader, namespace string, postBuild *stagesetv1.PostBuild) (vars map[string]string, fromSecret map[string]bool, err error) {
	if postBuild == nil {
		return nil, nil, nil
	}
	vars, fromSecret = make(map[string]string), make(map[string]bool)
	for _, ref := range postBuild.SubstituteFrom {
		data, err := referentData(ctx, c, namespace, ref)
		if err != nil {
			return nil, nil, err
		}
		for k, v := range data {
			vars[k] = stripNewlines(v)
			fromSecret[k] = ref.Kind == "Secret"
		}
	}
	for k, v := range postBuild.Substitute {
		vars[k] = stripNewlines(v)
		fromSecret[k] = false
	}
	return vars, fromSecret, nil
}

// referentData returns the string data of one substituteFrom referent, or
// nil when it is optional and missing.
func referentData(ctx context.Context, c client.Reader, namespace string, ref stagesetv1.SubstituteReference) (map[string]string, error) {
	key := types.NamespacedName{Namespace: namespace, Name: ref.Name}
	var (
		obj  client.Object
		data func() map[string]string
	)
	switch ref.Kind {
	case "ConfigMap":
		cm := &corev1.ConfigMap{}
		obj, data = cm, func() map[string]string { return cm.Data }
	case "Secret":
		secret := &corev1.Secret{}
		obj, data = secret, func() map[string]string {
			decoded := make(map[string]string, len(secret.Data))
			for k, v := range secret.Data {
				decoded[k] = string(v)
			}
			return decoded
		}
	default:
		return nil, errorf("substituteFrom %s/%s: kind must be ConfigMap or Secret", ref.Kind, ref.Name)
	}

	err := c.Get(ctx, key, obj)
	switch {
	case apierrors.IsNotFound(err) && ref.Optional:
		return nil, nil
	case apierrors.IsNotFound(err):
		return nil, errorf("substituteFrom %s %s/%s not found", ref.Kind, namespace, ref.Name)
	case err != nil:
		return nil, fmt.Errorf("reading substituteFrom %s %s/%s: %w", ref.Kind, namespace, ref.Name, err)
	}
	return data(), nil
}

// yamlLineBreaks removes every character the YAML parser (go-yaml, as
// libyaml) reads as a line break: a value substituted into one line must
// stay on that line. Flux removes "\n" only, which lets a carriage return
// (left over from a Windows file, or planted), NEL (U+0085) or U+2028 and
// U+2029 start a new line in "x\r  key: y" and add keys to the object.
var yamlLineBreaks = strings.NewReplacer("\n", "", "\r", "", "\u0085", "", "\u2028", "", "\u2029", "")

// stripNewlines removes the line breaks of a variable value.
func stripNewlines(v string) string {
	return yamlLineBreaks.Replace(v)
}
