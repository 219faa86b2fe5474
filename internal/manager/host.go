package manager

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/switchyard/switchyard/internal/atomicfile"
	"github.com/switchyard/switchyard/internal/dockerctl"
	"github.com/switchyard/switchyard/internal/ids"
)

// Labels that tell switchyards sharing one Docker daemon apart.
const (
	// LabelHost is the host id (Options.HostID) of the switchyard that
	// made the container: one app may run on several hosts of a fleet, or
	// several switchyards on one daemon.
	LabelHost = "switchyard.host"
	// LabelOwner is the instance id of the state directory whose manager
	// made the container (owner.id in it): a second switchyard for the
	// same app and host but another state directory is refused.
	LabelOwner = "switchyard.owner"
	// LabelStateDir is that state directory, so the refusal can name it.
	LabelStateDir = "switchyard.state-dir"
)

// ErrOtherInstance: another switchyard (another state directory) manages
// the same app and host id on this Docker daemon.
var ErrOtherInstance = errors.New("another switchyard manages this app and host")

// hostIDPattern is what a host id may be: a DNS label's characters, also
// dots and underscores, as hostnames and instance ids have.
var hostIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// ValidHostID checks a host id: 1 to 63 letters, digits, '.', '_' or '-',
// starting with a letter or digit (it names an S3 object and a label).
func ValidHostID(id string) error {
	if !hostIDPattern.MatchString(id) {
		return fmt.Errorf("host id %q: want 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit", id)
	}
	return nil
}

// DefaultHostID is the host id when none is given and the state file
// names none: the machine's hostname, cut to what ValidHostID accepts.
func DefaultHostID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	h = strings.Map(func(r rune) rune {
		if r < 128 && (r == '.' || r == '_' || r == '-' || ('0' <= r && r <= '9') || ('a' <= r|0x20 && r|0x20 <= 'z')) {
			return r
		}
		return '-'
	}, h)
	h = strings.TrimLeft(h, "._-")
	if len(h) > 63 {
		h = h[:63]
	}
	if ValidHostID(h) != nil {
		return "localhost"
	}
	return h
}

// resolveHost settles the host id and the owner id once, in New: the
// operator's --host-id, else the state file's (an identity kept with the
// state, as a container's hostname changes when it is made again), else
// the hostname. A host id given that differs from the state file's is an
// error: the containers of record carry the other.
func (m *Manager) resolveHost() error {
	st, err := m.loadState()
	if err != nil {
		return err
	}
	switch {
	case m.o.HostID == "" && st.Host != "":
		m.o.HostID = st.Host
	case m.o.HostID == "":
		m.o.HostID = DefaultHostID()
	case st.Host != "" && st.Host != m.o.HostID:
		return fmt.Errorf("state file %s belongs to host id %q, not %q: use --host-id %s, or another --state-dir",
			m.statePath(), st.Host, m.o.HostID, st.Host)
	}
	if err := ValidHostID(m.o.HostID); err != nil {
		return err
	}
	// A state file from before host ids: its containers carry no host label
	// and are this host's.
	m.legacy = st.App != "" && st.Host == ""
	m.owner, err = ownerID(m.o.StateDir)
	return err
}

// ownerID reads the state directory's instance id (owner.id), making it
// the first time. Processes sharing the state directory (a self-upgrade)
// share it, so they never refuse each other.
func ownerID(dir string) (string, error) {
	path := filepath.Join(dir, "owner.id")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) == 32 {
		return strings.TrimSpace(string(b)), nil
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	id := hex.EncodeToString(b[:])
	if err := atomicfile.Write(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write the instance id %s: %w", path, err)
	}
	return id, nil
}

// HostID is the host id the manager's containers carry.
func (m *Manager) HostID() string { return m.o.HostID }

// hostLabels are the labels of record every container the manager makes
// carries.
func (m *Manager) hostLabels(labels map[string]string) {
	labels[LabelApp] = m.o.App
	labels[LabelHost] = m.o.HostID
	labels[LabelOwner] = m.owner
	if dir, err := filepath.Abs(m.o.StateDir); err == nil {
		labels[LabelStateDir] = dir
	}
}

// ours says whether a container of the app belongs to this host: its host
// label is ours, or it has none and the state file is from before host ids.
func (m *Manager) ours(c dockerctl.Container) bool {
	h, ok := c.Labels[LabelHost]
	return h == m.o.HostID || (!ok && m.legacy)
}

// listOurs lists the app's containers of this host, newest first.
func (m *Manager) listOurs(ctx context.Context) ([]dockerctl.Container, error) {
	cs, err := m.o.Docker.List(ctx, map[string]string{LabelApp: m.o.App})
	if err != nil {
		return nil, fmt.Errorf("list the containers of app %s: %w", m.o.App, dockerErr(err))
	}
	out := cs[:0]
	for _, c := range cs {
		if m.ours(c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// checkOwner refuses to manage the app on this host while another state
// directory's switchyard runs a container of it: both would adopt, stop and
// replace each other's containers.
func (m *Manager) checkOwner(cs []dockerctl.Container) error {
	for _, c := range cs {
		owner := c.Labels[LabelOwner]
		if owner == "" || owner == m.owner || !c.Running {
			continue
		}
		return fmt.Errorf("%w: app %s on host %s runs container %s (%s) of the switchyard whose state directory is %s "+
			"(instance %s): stop that switchyard first, or give this one another --app or --host-id",
			ErrOtherInstance, m.o.App, m.o.HostID, ids.Short(c.ID), c.Name, cmpDir(c.Labels[LabelStateDir]), ids.Short(owner))
	}
	return nil
}

func cmpDir(dir string) string {
	if dir == "" {
		return "unknown"
	}
	return dir
}

// eventLabels select the Docker events of this host's containers (all of
// the app's while containers from before host ids may run: the handlers
// act only on containers the manager knows).
func (m *Manager) eventLabels() map[string]string {
	if m.legacy {
		return map[string]string{LabelApp: m.o.App}
	}
	return map[string]string{LabelApp: m.o.App, LabelHost: m.o.HostID}
}

// mine keeps the containers this state directory's managers made (and
// those from before owner labels).
func (m *Manager) mine(cs []dockerctl.Container) []dockerctl.Container {
	out := cs[:0]
	for _, c := range cs {
		if o := c.Labels[LabelOwner]; o == "" || o == m.owner {
			out = append(out, c)
		}
	}
	return out
}
