package graphtest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// graphError builds Graph's error shape:
// {"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}.
func graphError(status int, code, message string, reqHeader http.Header) response {
	body := map[string]any{
		"error": map[string]any{
			"code":    code,
			"message": message,
			"innerError": map[string]any{
				"date":              time.Now().UTC().Format("2006-01-02T15:04:05"),
				"request-id":        newGUID(),
				"client-request-id": reqHeader.Get("client-request-id"),
			},
		},
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	if status == http.StatusUnauthorized {
		// Graph's challenge carries no claims here, so clients do not take it
		// for a continuous-access-evaluation retry.
		h.Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`)
	}
	return response{status: status, header: h, body: mustJSON(body)}
}

// throttled is the 429 answer with its Retry-After in whole seconds.
func throttled(after time.Duration, reqHeader http.Header) response {
	resp := graphError(http.StatusTooManyRequests, "TooManyRequests", "Too many requests. Retry after the time given in the Retry-After header.", reqHeader)
	resp.header.Set("Retry-After", strconv.FormatInt(int64((after+time.Second-1)/time.Second), 10))
	return resp
}

// failure is the answer of the Fail knob.
func failure(status int, reqHeader http.Header) response {
	code := map[int]string{
		http.StatusInternalServerError: "InternalServerError",
		http.StatusBadGateway:          "BadGateway",
		http.StatusServiceUnavailable:  "ServiceNotAvailable",
		http.StatusGatewayTimeout:      "GatewayTimeout",
	}[status]
	if code == "" {
		code = strings.ReplaceAll(http.StatusText(status), " ", "")
	}
	return graphError(status, code, "Injected failure: "+http.StatusText(status)+".", reqHeader)
}

// entraError builds the token endpoint's error shape, with the AADSTS code
// leading error_description as Entra writes it.
func entraError(status int, errCode string, aadsts int, description string) response {
	now := time.Now().UTC()
	trace, corr := newGUID(), newGUID()
	body := map[string]any{
		"error": errCode,
		"error_description": "AADSTS" + strconv.Itoa(aadsts) + ": " + description +
			" Trace ID: " + trace + " Correlation ID: " + corr + " Timestamp: " + now.Format("2006-01-02 15:04:05Z"),
		"error_codes":    []int{aadsts},
		"timestamp":      now.Format("2006-01-02 15:04:05Z"),
		"trace_id":       trace,
		"correlation_id": corr,
		"error_uri":      "https://login.microsoftonline.com/error?code=" + strconv.Itoa(aadsts),
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json; charset=utf-8")
	return response{status: status, header: h, body: mustJSON(body)}
}

func jsonResponse(status int, v any) response {
	h := http.Header{}
	h.Set("Content-Type", "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8")
	return response{status: status, header: h, body: mustJSON(v)}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only maps, slices and strings built here are marshalled.
		panic(err)
	}
	return b
}
