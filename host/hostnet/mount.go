package hostnet

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// isNamespaceMount reports whether path is a live named namespace: a bind mount of an
// nsfs inode. An entry whose mount is gone is a plain empty file of /run/netns's own
// file system (tmpfs).
func isNamespaceMount(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("hostnet: statfs %s: %w", path, err)
	}
	return st.Type == unix.NSFS_MAGIC, nil
}

// removeStale removes the entry of a named namespace whose mount is gone. A mount that
// is still there (on a path that is not nsfs) is detached first.
func removeStale(name string) error {
	path := filepath.Join(netnsDir, name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("hostnet: unmount stale %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("hostnet: remove stale %s: %w", path, err)
	}
	return nil
}

// shareNetnsDir makes /run/netns a mount point of its own with shared propagation, as
// `ip netns add` does, so namespace mounts made under it are seen by every mount
// namespace that is a peer of this one. Already shared: nothing to do.
func shareNetnsDir() error {
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return fmt.Errorf("hostnet: %s: %w", netnsDir, err)
	}
	err := unix.Mount("", netnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) { // not a mount point yet: bind it onto itself
		if err = unix.Mount(netnsDir, netnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err == nil {
			err = unix.Mount("", netnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		}
	}
	if err != nil {
		return fmt.Errorf("hostnet: make %s a shared mount: %w", netnsDir, err)
	}
	return nil
}
