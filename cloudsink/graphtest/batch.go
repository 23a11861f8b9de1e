package graphtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// maxBatchItems is Graph's limit on requests in one JSON $batch.
const maxBatchItems = 20

type batchRequestItem struct {
	ID             string            `json:"id"`
	Method         string            `json:"method"`
	URL            string            `json:"url"`
	Headers        map[string]string `json:"headers"`
	Body           json.RawMessage   `json:"body"`
	DependsOn      []string          `json:"dependsOn"`
	AtomicityGroup string            `json:"atomicityGroup"`
}

type batchResponseItem struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body,omitempty"`
}

// batch runs a JSON $batch. Malformed envelopes are refused whole; each
// valid item runs as its own operation (fault knobs included) and gets its
// own status. Responses come back in reverse order: Graph promises no
// order, so clients must match them by id.
func (s *Server) batch(r *http.Request, body []byte, gz bool, perms TokenInfo) (response, string, []Request) {
	s.mu.Lock()
	s.batchSeq++
	batchID := "batch-" + strconv.Itoa(s.batchSeq)
	throttle := s.batchThrottleN > 0
	after := s.batchThrottleAfter
	if throttle {
		s.batchThrottleN--
	}
	s.mu.Unlock()
	if throttle {
		return throttled(after, r.Header), batchID, nil
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return graphError(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Content-Type '%s' is not supported for $batch; send application/json.", r.Header.Get("Content-Type")), r.Header), batchID, nil
	}
	var env struct {
		Requests []batchRequestItem `json:"requests"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return graphError(http.StatusBadRequest, "BadRequest", "Invalid batch payload: "+err.Error(), r.Header), batchID, nil
	}
	if resp, ok := checkBatch(env.Requests, r.Header); !ok {
		return resp, batchID, nil
	}
	out := make([]batchResponseItem, 0, len(env.Requests))
	log := make([]Request, 0, len(env.Requests))
	for _, it := range env.Requests {
		path, rawQuery := splitItemURL(it.URL)
		h := http.Header{}
		for k, v := range it.Headers {
			h.Set(k, v)
		}
		var resp response
		hasBody := len(it.Body) > 0 && !bytes.Equal(bytes.TrimSpace(it.Body), []byte("null"))
		switch {
		case hasBody && h.Get("Content-Type") == "":
			resp = graphError(http.StatusBadRequest, "BadRequest", "A batch request with a body needs a Content-Type header.", h)
		case hasBody && bytes.TrimSpace(it.Body)[0] != '{':
			resp = graphError(http.StatusBadRequest, "BadRequest", "The emulator takes JSON object bodies in $batch items only.", h)
		default:
			var b []byte
			if hasBody {
				b = it.Body
			}
			resp = s.operate(op{method: strings.ToUpper(it.Method), path: path, rawQuery: rawQuery, header: h, body: b, perms: perms})
		}
		item := batchResponseItem{ID: it.ID, Status: resp.status, Headers: map[string]string{}}
		for k := range resp.header {
			item.Headers[k] = resp.header.Get(k)
		}
		if len(resp.body) > 0 {
			item.Body = resp.body
		}
		out = append(out, item)
		log = append(log, Request{Method: strings.ToUpper(it.Method), Path: "/v1.0" + path, Query: rawQuery, Status: resp.status, InBatch: true, BatchID: batchID, ItemID: it.ID, GzipBody: gz})
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	return response{status: http.StatusOK, header: h, body: mustJSON(map[string]any{"responses": out})}, batchID, log
}

// checkBatch refuses what Graph refuses for the whole envelope, and what
// the emulator does not implement (dependsOn, atomicity groups).
func checkBatch(items []batchRequestItem, h http.Header) (response, bool) {
	bad := func(format string, args ...any) (response, bool) {
		return graphError(http.StatusBadRequest, "BadRequest", fmt.Sprintf(format, args...), h), false
	}
	if len(items) == 0 {
		return bad("Invalid batch payload: at least one request is required.")
	}
	if len(items) > maxBatchItems {
		return bad("Invalid batch payload: the batch has %d requests; the limit is %d.", len(items), maxBatchItems)
	}
	ids := map[string]bool{}
	for i, it := range items {
		switch {
		case it.ID == "":
			return bad("Invalid batch payload: request %d has no id.", i+1)
		case ids[it.ID]:
			return bad("Invalid batch payload: the id '%s' is used more than once.", it.ID)
		case it.Method == "":
			return bad("Invalid batch payload: request '%s' has no method.", it.ID)
		case it.URL == "":
			return bad("Invalid batch payload: request '%s' has no url.", it.ID)
		case len(it.DependsOn) > 0 || it.AtomicityGroup != "":
			return bad("Invalid batch payload: request '%s' uses dependsOn or atomicityGroup, which the emulator does not support.", it.ID)
		}
		u, err := url.Parse(it.URL)
		if err != nil || u.IsAbs() || u.Host != "" {
			return bad("Invalid batch payload: request '%s' has url '%s'; batch urls are relative to the version, like /users/{id}.", it.ID, it.URL)
		}
		if p := "/" + strings.TrimPrefix(u.Path, "/"); strings.HasPrefix(p, "/v1.0/") || strings.HasPrefix(p, "/beta/") || strings.HasPrefix(p, "/$batch") {
			return bad("Invalid batch payload: request '%s' has url '%s'; leave the version out and do not nest $batch.", it.ID, it.URL)
		}
		ids[it.ID] = true
	}
	return response{}, true
}

// splitItemURL turns a relative item url into a decoded path and raw query.
func splitItemURL(raw string) (string, string) {
	u, err := url.Parse(raw)
	if err != nil {
		// checkBatch parsed it already.
		return raw, ""
	}
	return "/" + strings.TrimPrefix(u.Path, "/"), u.RawQuery
}
