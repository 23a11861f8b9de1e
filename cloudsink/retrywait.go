package cloudsink

import "time"

// observed returns p telling onWait about each wait before a retry.
func (p retryPolicy) observed(onWait func(time.Duration)) retryPolicy {
	p.onWait = onWait
	return p
}

// waited reports a wait before a retry to whoever listens.
func (p retryPolicy) waited(d time.Duration) {
	if p.onWait != nil {
		p.onWait(d)
	}
}
