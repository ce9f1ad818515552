# The people's entry points. `make demo` and `make test` install what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
TOOLS := $(CURDIR)/.tools
BIN := $(CURDIR)/target/debug/alarm-tray
export PATH := $(TOOLS)/bin:$(TOOLS)/venv/bin:$(PATH)

# Debian 12 / Ubuntu 22.04+ packages: build (Tauri 2, WebKitGTK 4.1, appindicator, D-Bus),
# the desktop under test (Xvfb, keyring, dunst, WebKitWebDriver), the real peers (RabbitMQ)
# and strace (the durable-before-ACK case reads the app's syscalls).
APT_PKGS := build-essential pkg-config file curl libwebkit2gtk-4.1-dev libxdo-dev libssl-dev \
  libayatana-appindicator3-dev librsvg2-dev libdbus-1-dev libasound2-dev xvfb xauth x11-utils dbus-x11 \
  gnome-keyring libsecret-tools dunst imagemagick xdotool webkit2gtk-driver at-spi2-core \
  libglib2.0-bin rabbitmq-server python3-venv python3-pip openssl strace poppler-utils
# Issue 26: the team's MQTT broker and its command-line clients (forged messages).
APT_PKGS += mosquitto mosquitto-clients
# The Windows build and its tests under Wine (issue 22): MinGW cross-compiler and Wine 8.
# `WINE_TEST=0` leaves them out on a machine without Wine (CI never sets it).
ifneq ($(WINE_TEST),0)
APT_PKGS += wine wine64 gcc-mingw-w64-x86-64
endif
# Headless Wayland compositor: the demo runs under it in make test (issue 24).
APT_PKGS += weston python3-gi

.PHONY: help deps deps-system deps-tools deps-ui ui build demo test test-rust test-ui check fmt clippy bench fuzz soak clean-tools bindings windows

help:
	@echo "make demo   - install what is missing, build, start Alarm Tray in demo mode"
	@echo "make test   - install what is missing, run every test (Rust, UI, end-to-end, package)"
	@echo "make check  - fmt, clippy, UI type check, UI bindings up to date"
	@echo "make bindings - write ui/src/bindings.ts from the Rust types (ts-rs)"
	@echo "make windows - cross-build the Windows alarm-tray.exe (MinGW), tested under Wine by make test"

deps: deps-system deps-tools deps-ui

deps-system:
	@missing=$$(for p in $(APT_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages: $$missing"; \
	  $(SUDO) apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get -o DPkg::Lock::Timeout=600 install -y -qq $$missing; \
	fi
	@command -v npm >/dev/null || { DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get -o DPkg::Lock::Timeout=600 install -y -qq nodejs npm; }
	@command -v cargo >/dev/null || { echo "Rust (cargo >= 1.89) is needed: install it with rustup, see README"; exit 1; }

deps-tools: $(TOOLS)/bin/tauri-driver $(TOOLS)/venv/.stamp

$(TOOLS)/bin/tauri-driver:
	cargo install tauri-driver --version '^2' --locked --root $(TOOLS)

$(TOOLS)/venv/.stamp: tests/requirements.txt
	python3 -m venv $(TOOLS)/venv
	$(TOOLS)/venv/bin/pip install -q -r tests/requirements.txt
	touch $@

deps-ui: ui/node_modules/.stamp

ui/node_modules/.stamp: ui/package.json
	cd ui && npm install --no-audit --no-fund
	touch $@

# The UI is rebuilt only when its sources change: a fresh ui/dist makes cargo rebuild the
# app (its build script embeds ui/dist), which takes minutes in release (`make bench`).
UI_SRC := $(shell find ui/src ui/index.html ui/package.json ui/package-lock.json ui/tsconfig.json ui/vite.config.ts -type f 2>/dev/null)
ui: ui/dist/index.html

ui/dist/index.html: ui/node_modules/.stamp $(UI_SRC)
	cd ui && npm run build

build: ui
	cargo build --workspace --all-targets

demo: deps build
	$(BIN) --demo

# Everything runs inside a throwaway desktop session (D-Bus, Xvfb, keyring, dunst).
# The first run includes `windows::`: the cross-built .exe under Wine (tests/integration/windows.rs).
test: deps build $(if $(filter 0,$(WINE_TEST)),,windows)
	cd ui && npm run check && npm test
	ALARM_TRAY_BIN=$(BIN) ALARM_TRAY_EXE=$(WIN_EXE) WINE_TEST=$(WINE_TEST) scripts/desktop-session.sh cargo test --workspace --lib --bins --tests -- --test-threads=4 --skip e2e:: --skip demo::
	# The real app's end-to-end tests last, on their own: they share one display and keyring.
	ALARM_TRAY_BIN=$(BIN) scripts/desktop-session.sh cargo test -p alarm-tray-tests --test integration -- --test-threads=2 e2e:: demo::
	# The release .deb, installed on this machine, started, quit and removed (issue 10).
	# PACKAGE_TEST=0 leaves it out on a machine where Alarm Tray is installed for real.
ifneq ($(PACKAGE_TEST),0)
	$(MAKE) package-test
endif

check: deps-ui
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cd ui && npm run check
	# ui/src/bindings.ts is generated from the Rust types: fails while it is out of date.
	cargo test -p alarm-tray --lib gui::bindings

# Writes ui/src/bindings.ts anew from the Rust types the window receives and sends.
bindings:
	ALARM_TRAY_WRITE_BINDINGS=1 cargo test -p alarm-tray --lib gui::bindings

fmt:
	cargo fmt --all

# The Windows code paths (keyring store, named pipe, plain notifications) type-checked with
# the MinGW toolchain; nothing is run. Downloads the target's standard library via rustup.
.PHONY: check-windows
WIN_TARGET := x86_64-pc-windows-gnu
WIN_TARGET_DIR := $(CURDIR)/target/windows
check-windows:
	rustup target add $(WIN_TARGET)
	@command -v x86_64-w64-mingw32-gcc >/dev/null || { DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get -o DPkg::Lock::Timeout=600 install -y -qq gcc-mingw-w64-x86-64; }
	cargo clippy -p alarm-tray --target $(WIN_TARGET) --target-dir $(WIN_TARGET_DIR) -- -D warnings

# The Windows program, cross-built on Debian with MinGW (issue 22), with the UI embedded;
# WebView2Loader.dll lands beside it. Nothing is downloaded but the target's standard library
# (rustup). `make test` runs it under Wine (tests/integration/windows.rs). A debug build by
# default: from scratch it took 9 CPU-minutes here against 23 for release (thin LTO);
# `WIN_PROFILE=release` builds and tests the release one (it passes the same tests).
WIN_PROFILE ?= debug
WIN_EXE := $(WIN_TARGET_DIR)/$(WIN_TARGET)/$(WIN_PROFILE)/alarm-tray.exe
windows: deps-system ui
	rustup target add $(WIN_TARGET)
	cargo build $(if $(filter release,$(WIN_PROFILE)),--release) -p alarm-tray --bin alarm-tray --target $(WIN_TARGET) --target-dir $(WIN_TARGET_DIR)
	@ls -l $(WIN_EXE)

# The fault cases of issue 8 at full size (20 broker kills in 5,000 alarms, 3 minutes without
# network, …). Each case prints a FAULT-FIGURES line; docs/RELIABILITY.md has the table.
soak: deps build
	set -o pipefail; ALARM_TRAY_SOAK=1 ALARM_TRAY_BIN=$(BIN) scripts/desktop-session.sh \
	  cargo test -p alarm-tray-tests --test integration faults:: -- --test-threads=2 --nocapture 2>&1 \
	  | tee target/soak.log | grep -E '^FAULT-FIGURES|^test |test result'
	# The long run of issue 24 (ALARM_TRAY_SOAK_MINS, 25 by default): one SOAK-FIGURES line.
	set -o pipefail; ALARM_TRAY_SOAK=1 ALARM_TRAY_BIN=$(BIN) scripts/desktop-session.sh \
	  cargo test -p alarm-tray-tests --test integration soak:: -- --test-threads=1 --nocapture 2>&1 \
	  | tee target/soak-long.log | grep -E '^SOAK-FIGURES|^test |test result'

# Each fuzz target for FUZZ_SECS (cargo-fuzz needs nightly features: RUSTC_BOOTSTRAP=1 on
# stable). Crashes land in fuzz/artifacts/<target>/ and become regression tests.
FUZZ_SECS ?= 30
FUZZ_TARGETS := stomp_decode saveris_payload element_frame settings_load
fuzz:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  mkdir -p corpus/$$t && \
	  RUSTC_BOOTSTRAP=1 cargo fuzz run -O $$t corpus/$$t -- -max_total_time=$(FUZZ_SECS) -rss_limit_mb=2048 \
	  || exit 1; \
	done

# Performance, measured side by side (docs/BENCH.md): broker ingest vs. the vendor's Node
# sample, latency, footprint vs. gotify-tray, history queries, ELEMENT. About 10 minutes
# after the release build. BENCH_QUICK=1 for a smoke run.
bench: deps-system ui
	bench/run.sh

# ---------------------------------------------------------------------------------------
# Packages. `make package` builds the release .deb and .rpm with the Tauri bundler (both
# are made offline; AppImage is left out because its bundler downloads linuxdeploy at build
# time). `make package-test` installs the .deb on this machine and checks it end to end
# (packaging/package-test.sh; needs root or sudo).
.PHONY: package package-test
TAURI_CLI := $(TOOLS)/node_modules/.bin/tauri
PKG_TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
PKG_OUT := $(PKG_TARGET_DIR)/package
PKG_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
PKG_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
PKG_DEB := $(PKG_OUT)/alarm-tray_$(PKG_VERSION)_$(PKG_ARCH).deb
PKG_MAINTAINER = $(shell python3 -c 'import json; print(json.load(open("packaging/tauri.linux-package.json"))["bundle"]["publisher"])')

$(TAURI_CLI):
	npm install --prefix $(TOOLS) --no-audit --no-fund --no-save @tauri-apps/cli@2

packaging/build/changelog.gz: CHANGELOG.md Cargo.toml packaging/debian_changelog.py packaging/tauri.linux-package.json
	mkdir -p $(@D)
	set -o pipefail; python3 packaging/debian_changelog.py CHANGELOG.md $(PKG_VERSION) "$(PKG_MAINTAINER)" | gzip -9n > $@.tmp
	mv $@.tmp $@

packaging/build/alarm-tray.1.gz: packaging/alarm-tray.1
	mkdir -p $(@D)
	gzip -9n < $< > $@

package: deps-system ui $(TAURI_CLI) packaging/build/changelog.gz packaging/build/alarm-tray.1.gz
	cd src-tauri && CARGO_TARGET_DIR=$(PKG_TARGET_DIR) $(TAURI_CLI) build --ci --bundles deb,rpm \
	  --config $(CURDIR)/packaging/tauri.linux-package.json
	mkdir -p $(PKG_OUT)
	cp "$(PKG_TARGET_DIR)/release/bundle/deb/Alarm Tray_$(PKG_VERSION)_$(PKG_ARCH).deb" $(PKG_DEB)
	for f in "$(PKG_TARGET_DIR)"/release/bundle/rpm/*$(PKG_VERSION)-1.*.rpm; do \
	  cp "$$f" "$(PKG_OUT)/alarm-tray-$(PKG_VERSION)-1.$${f##*-1.}"; done
	@ls -l $(PKG_OUT)

package-test: package
	packaging/package-test.sh $(PKG_DEB)
