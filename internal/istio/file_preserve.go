package istio

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// preserveEdit renders out by editing the original manifest src in place:
// only the managed route's weights and mirror fields and our annotations
// change, so comments, key order and quoting of everything else survive a
// write (what a reviewer of a GitOps commit wants to see). It re-decodes its
// result and returns ok=false unless that equals out exactly; the caller then
// falls back to the canonical encoding, which is always correct.
func preserveEdit(src []byte, out *unstructured.Unstructured, cfg Config) (b []byte, ok bool) {
	defer func() {
		if recover() != nil { // a shape of YAML we did not foresee: fall back
			b, ok = nil, false
		}
	}()
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil || doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, false
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, false
	}

	// Our annotations (Apply never touches the others).
	for k, v := range out.GetAnnotations() {
		if strings.HasPrefix(k, AnnotationPrefix) {
			meta := child(root, "metadata", true)
			setKey(child(meta, "annotations", true), k, v)
		}
	}

	// The managed route, located by name as Apply did.
	mr, err := findRoute(out, cfg.withDefaults())
	if err != nil {
		return nil, false
	}
	http := child(child(root, "spec", false), "http", false)
	if http == nil || http.Kind != yaml.SequenceNode || mr.index >= len(http.Content) {
		return nil, false
	}
	routeNode := http.Content[mr.index]
	dests := child(routeNode, "route", false)
	outDests, _ := mr.route["route"].([]any)
	if dests == nil || len(dests.Content) != len(outDests) {
		return nil, false
	}
	for i, d := range outDests {
		if w, ok := d.(map[string]any)["weight"]; ok {
			setKey(dests.Content[i], "weight", w)
		}
	}
	for _, k := range []string{"mirror", "mirrorPercentage"} {
		if v, ok := mr.route[k]; ok {
			setKey(routeNode, k, v)
		}
	}

	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(indentOf(src))
	if compactSeqs(src) {
		enc.CompactSeqIndent()
	}
	if err := enc.Encode(&doc); err != nil || enc.Close() != nil {
		return nil, false
	}
	got, err := decodeManifest(buf.Bytes())
	if err != nil || !sameObject(got, out) {
		return nil, false
	}
	return buf.Bytes(), true
}

// child returns the value node of key in mapping m; with create, a missing
// key gets an empty mapping.
func child(m *yaml.Node, key string, create bool) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	if !create {
		return nil
	}
	v := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
	return v
}

// setKey sets key in mapping m to v, keeping the key's comments and, for a
// scalar replacing a scalar, the value's comments and quoting style.
func setKey(m *yaml.Node, key string, v any) {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		panic(err)
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != key {
			continue
		}
		old := m.Content[i+1]
		if old.Kind == yaml.ScalarNode && n.Kind == yaml.ScalarNode {
			if old.Value != n.Value || old.Tag != n.Tag {
				old.Value, old.Tag = n.Value, n.Tag
				if n.Tag != "!!str" {
					old.Style = 0 // a number must not stay quoted
				}
			}
			return
		}
		if reflect.DeepEqual(decodeNode(old), normalizeJSON(v)) {
			return // unchanged mapping: keep it as written
		}
		n.HeadComment, n.LineComment, n.FootComment = old.HeadComment, old.LineComment, old.FootComment
		m.Content[i+1] = &n
		return
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, &n)
}

func decodeNode(n *yaml.Node) any {
	var v any
	if n.Decode(&v) != nil {
		return nil
	}
	return normalizeJSON(v)
}

// normalizeJSON maps a value through JSON, as unstructured objects see it.
func normalizeJSON(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var out any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if d.Decode(&out) != nil {
		return nil
	}
	return out
}

// sameObject compares two objects as JSON documents (int64 20 == float64 20).
func sameObject(a, b *unstructured.Unstructured) bool {
	return reflect.DeepEqual(normalizeJSON(a.Object), normalizeJSON(b.Object))
}

// indentOf guesses the mapping indent of src: the first indented key line.
func indentOf(src []byte) int {
	for _, line := range strings.Split(string(src), "\n") {
		trimmed := strings.TrimLeft(line, " ")
		if n := len(line) - len(trimmed); n > 0 && trimmed != "" && !strings.HasPrefix(trimmed, "#") && !strings.HasPrefix(trimmed, "- ") {
			return n
		}
	}
	return 2
}

// compactSeqs reports whether src writes sequences at their key's indent
// (kubectl style, "http:\n- name: x") rather than indented under it.
func compactSeqs(src []byte) bool {
	lines := strings.Split(string(src), "\n")
	for i := 0; i+1 < len(lines); i++ {
		key := strings.TrimRight(lines[i], " ")
		if !strings.HasSuffix(key, ":") || strings.HasPrefix(strings.TrimSpace(key), "#") {
			continue
		}
		next := lines[i+1]
		if t := strings.TrimLeft(next, " "); strings.HasPrefix(t, "- ") {
			return len(next)-len(t) == len(key)-len(strings.TrimLeft(key, " "))
		}
	}
	return true
}
