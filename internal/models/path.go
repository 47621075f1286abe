package models

import "strings"

// Path shapes the router recognises as inference calls. Only these are ever
// shadowed; every other path (health, readiness, metadata, anything unknown)
// is proxied to stable unchanged, which is why ParsePath needs no table of
// the protocols' GET endpoints: "not an inference call" is the whole answer.
const (
	v1Prefix    = "/v1/models/"
	v1Suffix    = ":predict"
	v2Prefix    = "/v2/models/"
	v2Infer     = "/infer"
	v2Versions  = "/versions/"
	maxNameSize = 256 // a longer "name" is a malformed or hostile path, not a model
)

// ParsePath recognises the inference endpoints of both protocols:
//
//	/v1/models/{name}:predict                    (KServe V1)
//	/v2/models/{name}/infer                      (Open Inference Protocol V2)
//	/v2/models/{name}/versions/{version}/infer   (Open Inference Protocol V2)
//
// path is the decoded URL path (http.Request.URL.Path), without the query.
// ok is false for every other path, including the protocols' health and
// metadata GETs; the HTTP method is the caller's business. Name and version
// must be non-empty single segments. The returned strings share memory with
// path; ParsePath does not allocate and is safe for concurrent use.
func ParsePath(path string) (proto Protocol, model, version string, ok bool) {
	switch {
	case strings.HasPrefix(path, v1Prefix):
		rest, found := strings.CutSuffix(path[len(v1Prefix):], v1Suffix)
		if !found || !validSegment(rest) {
			return ProtocolUnknown, "", "", false
		}
		return ProtocolV1, rest, "", true
	case strings.HasPrefix(path, v2Prefix):
		rest, found := strings.CutSuffix(path[len(v2Prefix):], v2Infer)
		if !found {
			return ProtocolUnknown, "", "", false
		}
		name, ver, hasVer := strings.Cut(rest, v2Versions)
		if !validSegment(name) || (hasVer && !validSegment(ver)) {
			return ProtocolUnknown, "", "", false
		}
		return ProtocolV2, name, ver, true
	}
	return ProtocolUnknown, "", "", false
}

// RewriteModel returns path with the model name replaced by newModel, keeping
// the protocol shape and any V2 version. It is how the shadow call reaches a
// canary that serves the model under a different name. A path ParsePath does
// not recognise, an empty newModel, or a newModel that is not a single path
// segment returns path unchanged, so a bad rename can never turn the shadow
// call into a request for some other endpoint.
func RewriteModel(path, newModel string) string {
	proto, model, version, ok := ParsePath(path)
	if !ok || newModel == "" || newModel == model || !validSegment(newModel) {
		return path
	}
	switch proto {
	case ProtocolV1:
		return v1Prefix + newModel + v1Suffix
	case ProtocolV2:
		if version != "" {
			return v2Prefix + newModel + v2Versions + version + v2Infer
		}
		return v2Prefix + newModel + v2Infer
	}
	return path
}

// validSegment reports whether s can be a model name or version: one
// non-empty path segment that is not a dot-segment.
// ValidModelName reports whether s can stand as a model name (one path
// segment) in an inference path.
func ValidModelName(s string) bool { return validSegment(s) }

func validSegment(s string) bool {
	return s != "" && len(s) <= maxNameSize && s != "." && s != ".." && !strings.ContainsRune(s, '/')
}
