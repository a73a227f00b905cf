#!/bin/bash
# The real photos lavin-small trains on, installed and gathered in one folder (links):
#
#   bash weights/training/photo_sources.sh [DIR]     # DIR defaults to runs/photos
#   lavin train vae --data generator+photos:/usr/share/wallpapers,runs/photos ...
#
# - KDE's plasma-workspace-wallpapers (Debian, GPL-2+ / LGPL-3 / CC-BY-SA): read in place,
#   /usr/share/wallpapers (each wallpaper folder keeps one photo at many sizes; lavin reads the largest).
# - Ubuntu Touch's lomiri-wallpapers-16.04 / -20.04 (Debian; each photo's licence, CC-BY-4.0,
#   CC-BY-SA-3.0, CC-BY-SA-4.0 or CC0-1.0, in /usr/share/doc/lomiri-wallpapers-16.04/copyright,
#   the same file in both packages): the photographs only (the abstract renderings in the same
#   folder are left out).
# - scikit-image's bundled sample photos (the wheel's skimage/data; public domain, CC0 or
#   permissive, skimage/data/README.txt): the colour photographs only.
#
# Never trained on: mate-backgrounds' nature photos (/usr/share/backgrounds/mate/nature), lavin's
# held-out real set (`lavin eval --photos`). They live below /usr/share/backgrounds, next to the
# lomiri files, which is why this script links the chosen files instead of naming that folder.
set -euo pipefail
out=${1:-runs/photos}
apt-get install -y -q plasma-workspace-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 >/dev/null
mkdir -p "$out"
lomiri="Infinite-Sea_by_Aury88 Kleiber_by_Lukas_Baubkus Bridge_by_Sander_Klootwijk Dragonfly_by_Bolly
Picture_0B_by_freespace Picture_1A_by_freespace Wine_by_Jakkub_Mede aitzgorri_by_Aitzol_Berasategi
analogpattern_by_Peter_Nerlich free_by_Peter_Nerlich friends_by_Aitzol_Berasategi greentock_by_Peter_Nerlich
life_by_Aitzol_Berasategi picosdeeuropa_by_Aitzol_Berasategi seeding_by_Clements_Engelhardt sunset_by_Aitzol_Berasategi"
for name in $lomiri; do
    ln -sf "/usr/share/backgrounds/$name.jpg" "$out/$name.jpg"
done
wheel=$(mktemp -d)
trap 'rm -rf "$wheel"' EXIT
pip download -q --no-deps 'scikit-image==0.26.0' -d "$wheel"
python -m zipfile -e "$wheel"/scikit_image-*.whl "$wheel/x"
for name in astronaut.png chelsea.png coffee.png rocket.jpg motorcycle_left.png retina.jpg ihc.png hubble_deep_field.jpg; do
    cp "$wheel/x/skimage/data/$name" "$out/skimage_$name"
done
echo "$(ls "$out" | wc -l) photos in $out (plus /usr/share/wallpapers)"
