/* The sidebar stays open at 1280 px (issue 14, item 2), loaded through UNFOLD["SCRIPTS"].

   Unfold 0.110 (static/unfold/js/app.js, theme()) starts the sidebar closed at window widths
   <= 1280 px and closes it again on every resize its Alpine plugin reports, but that plugin
   observes the page's root element, so a page that merely grows taller counts as a resize.
   At exactly 1280 px Unfold's CSS (`xl:relative`) puts the open sidebar beside the page,
   the page reflows, grows taller, and the sidebar shuts the moment it was opened. Here the
   handler runs only when the window's width really changed (and once at start, where Unfold
   decides the initial state). Delete this file when Unfold's handler checks the width. */
document.addEventListener("alpine:init", () => {
    const unfoldTheme = window.theme;
    if (typeof unfoldTheme !== "function") {
        return;
    }
    window.theme = function (...args) {
        const data = unfoldTheme(...args);
        const onResize = data.themeBindings && data.themeBindings["x-resize.window"];
        if (typeof onResize !== "function") {
            return data;
        }
        let width = null;
        data.themeBindings["x-resize.window"] = function () {
            if (window.innerWidth === width) {
                return;
            }
            width = window.innerWidth;
            return onResize.call(this);
        };
        return data;
    };
});
