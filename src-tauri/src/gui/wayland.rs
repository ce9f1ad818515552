//! Wayland: no GtkStatusIcon fallback for the tray (issue 24).
//!
//! libayatana-appindicator exports the tray item as a StatusNotifierItem on D-Bus; while no
//! StatusNotifierWatcher is on the bus it also makes a `GtkStatusIcon` as a fallback (an
//! XEmbed tray icon). Under GDK's Wayland backend a GtkStatusIcon has no widget (XEmbed is
//! X11 only), so every icon change logged `gtk_widget_get_scale_factor: assertion
//! 'GTK_IS_WIDGET (widget)' failed` — 42 of them in a 45 s demo. On Wayland the fallback
//! can never show anything, so it is switched off there: the class's `fallback` vfunc
//! (documented as overridable in app-indicator.h) makes no status icon. The item on D-Bus
//! is untouched, and a tray host that appears later still gets it.

use std::ffi::c_void;

use gtk::glib;
use gtk::glib::prelude::*;

/// The head of `AppIndicatorClass` (app-indicator.h, ayatana 0.5), up to the overridable
/// functions.
#[repr(C)]
struct AppIndicatorClass {
    parent: glib::gobject_ffi::GObjectClass,
    /// new_icon, new_attention_icon, new_status, new_icon_theme_path, new_label,
    /// connection_changed, scroll_event, app_indicator_reserved_ats.
    signals: [Option<unsafe extern "C" fn()>; 8],
    fallback: Option<unsafe extern "C" fn(*mut c_void) -> *mut c_void>,
    unfallback: Option<unsafe extern "C" fn(*mut c_void, *mut c_void)>,
}

unsafe extern "C" fn no_fallback(_indicator: *mut c_void) -> *mut c_void {
    std::ptr::null_mut()
}

unsafe extern "C" fn no_unfallback(_indicator: *mut c_void, _icon: *mut c_void) {}

/// Whether GDK runs on Wayland in this process.
pub fn is_wayland() -> bool {
    gtk::gdk::Display::default().is_some_and(|d| d.type_().name() == "GdkWaylandDisplay")
}

/// Switches the GtkStatusIcon fallback off under Wayland. Call on the main thread after
/// the tray was built (the appindicator library is loaded by then) and before the main loop
/// runs its fallback timer.
pub fn no_status_icon_fallback() {
    if !is_wayland() {
        return;
    }
    for lib in [c"libayatana-appindicator3.so.1", c"libappindicator3.so.1"] {
        // SAFETY: RTLD_NOLOAD only looks up a library the tray already loaded; the symbol is
        // the GType getter of its documented class, whose layout is mirrored above; both
        // vfuncs are replaced with functions of the documented signatures.
        unsafe {
            let handle = libc::dlopen(lib.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD);
            if handle.is_null() {
                continue;
            }
            let sym = libc::dlsym(handle, c"app_indicator_get_type".as_ptr());
            if sym.is_null() {
                continue;
            }
            let get_type: extern "C" fn() -> glib::ffi::GType = std::mem::transmute(sym);
            let class = glib::gobject_ffi::g_type_class_ref(get_type()) as *mut AppIndicatorClass;
            if class.is_null() {
                continue;
            }
            (*class).fallback = Some(no_fallback);
            (*class).unfallback = Some(no_unfallback);
            tracing::info!("Wayland: tray item on D-Bus only (no GtkStatusIcon fallback)");
            return;
        }
    }
}
