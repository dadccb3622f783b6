@echo off
rem Written by `labmind service install`; `labmind service uninstall` removes it.
rem Starts the labmind daemon in the background, then the tray.
${environment}start "" /min ${labmind} start
${gui}