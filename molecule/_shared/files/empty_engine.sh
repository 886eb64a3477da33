# Empty a lab server's inner engine of what an earlier scenario left in its image store:
# every container, volume, custom network and build cache, and every image but those named
# as arguments (the scenario's own, loaded or kept). Prints one line per kind removed.
set -eu
ids=$(docker ps -aq)
if [ -n "$ids" ]; then docker rm -f $ids >/dev/null; echo "containers removed: $(echo $ids | wc -w)"; fi
volumes=$(docker volume ls -q)
if [ -n "$volumes" ]; then docker volume rm $volumes >/dev/null; echo "volumes removed: $(echo $volumes | wc -w)"; fi
networks=$(docker network ls -q --filter type=custom)
if [ -n "$networks" ]; then docker network rm $networks >/dev/null; echo "networks removed: $(echo $networks | wc -w)"; fi
for ref in $(docker image ls | awk 'NR > 1 && $1 != "<none>" && $2 != "<none>" { print $1 ":" $2 }'); do
  case " $* " in
    *" $ref "*) ;;
    *) docker image rm -f "$ref" >/dev/null && echo "image removed: $ref" ;;
  esac
done
if [ -n "$(docker image ls -q --filter dangling=true)" ]; then docker image prune -f >/dev/null; echo "dangling images removed"; fi
docker builder prune -af >/dev/null 2>&1 || true
# What is left must be nothing but those images, or the scenario would not start clean.
left=$(docker ps -aq; docker volume ls -q; docker network ls -q --filter type=custom)
for ref in $(docker image ls | awk 'NR > 1 { print $1 ":" $2 }'); do
  case " $* " in *" $ref "*) ;; *) left="$left $ref" ;; esac
done
if [ -n "$(echo $left)" ]; then echo "the engine is not empty: $(echo $left)" >&2; exit 1; fi
