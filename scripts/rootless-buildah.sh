# Sourced by the image-building scripts: a private, rootless buildah/podman environment for the
# build user under WORK (overlay storage, cgroupfs + runc, no registries), and `as_builder CMD…`
# to run a command in it. Usage: rootless_buildah_env WORK
rootless_buildah_env() {
  work=$1
  mkdir -p "$work"
  chown "$FLEET_BUILD_USER:" "$work"
  as_builder mkdir -p "$work/home" "$work/run" "$work/tmp"
  # rootless: graphroot/runroot would be ignored, the store goes to rootless_storage_path
  as_builder sh -c "printf '[storage]\ndriver = \"overlay\"\nrootless_storage_path = \"%s\"\n' '$work/storage' > '$work/storage.conf'"
  as_builder sh -c "printf '[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\n' > '$work/containers.conf'"
  as_builder sh -c "printf 'short-name-mode = \"enforcing\"\n' > '$work/registries.conf'"
}

as_builder() {
  runuser -u "$FLEET_BUILD_USER" -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$work/home" \
    XDG_RUNTIME_DIR="$work/run" TMPDIR="$work/tmp" CONTAINERS_STORAGE_CONF="$work/storage.conf" \
    CONTAINERS_CONF="$work/containers.conf" CONTAINERS_REGISTRIES_CONF="$work/registries.conf" "$@"
}

# Removes the environment, storage included (its files belong to subordinate ids).
rootless_buildah_clean() {
  as_builder buildah rm --all >/dev/null
  as_builder buildah unshare rm -rf "$work/storage"
  rm -rf "$work"
}
