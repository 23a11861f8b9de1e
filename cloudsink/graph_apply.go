package cloudsink

import (
	"context"
	"fmt"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
)

// Apply replaces each account's certificateUserIds with PATCH /users/{id}
// {"authorizationInfo":{"certificateUserIds":[…]}}, 20 per $batch and
// Concurrency batches at a time. Throttled items are retried (see send);
// other refusals are final and come back as *Error with Graph's code.
func (g *Graph) Apply(ctx context.Context, updates []Update) []Result {
	results := make([]Result, len(updates))
	var reqs []batchRequest
	var index []int // reqs[n] is updates[index[n]]
	for i, u := range updates {
		results[i] = Result{Key: u.Key, Target: u.Target}
		req, err := g.patchRequest(ctx, u)
		if err != nil {
			results[i].Err = err
			continue
		}
		reqs = append(reqs, req)
		index = append(index, i)
	}
	for n, o := range g.runAll(ctx, reqs) {
		i := index[n]
		switch {
		case o.err != nil:
			results[i].Err = fmt.Errorf("cloudsink: graph: update %s (user %s): %w", updates[i].Key, updates[i].AccountID, o.err)
		case o.resp.Status < 200 || o.resp.Status > 299:
			results[i].Err = itemError(reqs[n], o.resp)
		}
	}
	return results
}

// patchRequest checks an update against Graph's limits and builds its
// request with the SDK's model, so the body is what the SDK would send.
func (g *Graph) patchRequest(ctx context.Context, u Update) (batchRequest, error) {
	if u.Target != TargetCertificateUserIDs {
		return batchRequest{}, fmt.Errorf("cloudsink: graph: update %s: target %q is not one the Graph sink writes (%s)", u.Key, u.Target, TargetCertificateUserIDs)
	}
	if u.AccountID == "" {
		return batchRequest{}, fmt.Errorf("cloudsink: graph: update %s: no account ID", u.Key)
	}
	if len(u.Values) > certificateUserIDsMax {
		return batchRequest{}, fmt.Errorf("cloudsink: graph: update %s (user %s): %d certificateUserIds, Graph takes at most %d", u.Key, u.AccountID, len(u.Values), certificateUserIDsMax)
	}
	for _, v := range u.Values {
		if v == "" || len(v) > certificateUserIDMax {
			return batchRequest{}, fmt.Errorf("cloudsink: graph: update %s (user %s): certificateUserIds value of %d characters, Graph takes 1 to %d", u.Key, u.AccountID, len(v), certificateUserIDMax)
		}
	}
	ai := models.NewAuthorizationInfo()
	// Never nil: an empty collection clears the values, a missing one
	// would not be a replacement.
	ai.SetCertificateUserIds(append([]string{}, u.Values...))
	user := models.NewUser()
	user.SetAuthorizationInfo(ai)
	ri, err := g.users.ByUserId(u.AccountID).ToPatchRequestInformation(ctx, user, nil)
	if err != nil {
		return batchRequest{}, fmt.Errorf("cloudsink: graph: build PATCH /users/%s: %w", u.AccountID, err)
	}
	return g.itemRequest(ri, "/users/"+u.AccountID)
}
